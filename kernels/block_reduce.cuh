// Block-wide reductions for kernels: warp shuffles, then one warp over the per-warp partials.
// Every thread gets the result. `scratch` is blockDim.x / 32 floats of shared memory; the
// trailing barrier lets the caller reuse it at once.
#pragma once

#include <cfloat>

#include "kernels/simt/simt.h"

namespace la3::kernels {

// Sum of `value` over the block; every thread gets the result. Needs blockDim.x / 32 floats
// of shared memory in `scratch`.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float total = lane < blockDim.x / 32 ? scratch[lane] : 0.0f;
  for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
  __syncthreads();  // scratch may be reused by the caller's next reduction
  return total;
}

__device__ __forceinline__ float block_max(float value, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float result = lane < blockDim.x / 32 ? scratch[lane] : -FLT_MAX;
  for (int offset = 16; offset > 0; offset /= 2) result = fmaxf(result, __shfl_xor_sync(0xffffffffu, result, offset));
  __syncthreads();
  return result;
}

}  // namespace la3::kernels
