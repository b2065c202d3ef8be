// Kernels of the SIMT self-check: the same source is compiled by nvcc (kernels/CMakeLists:
// la3_simt_nvcc_check, so the CUDA build of simt.h stays valid) and by g++ under the
// emulation (tests/simt/simt_selfcheck_test.cc).
#pragma once

#include "kernels/simt/simt.h"

namespace la3::kernels {

// Sum of `n` floats per block: warp shuffles, then one warp over the per-warp partials.
__global__ void block_reduce_sum(const float* in, float* out, int n) {
  LA3_DYNAMIC_SHARED(float, per_warp);
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  float value = i < n ? in[i] : 0.0f;
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) per_warp[warp] = value;
  __syncthreads();
  if (warp == 0) {
    float total = lane < blockDim.x / 32 ? per_warp[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset /= 2) total += __shfl_down_sync(0xffffffffu, total, offset);
    if (lane == 0) out[blockIdx.x] = total;
  }
}

}  // namespace la3::kernels
