// Kernels of the SIMT self-check: the same source is compiled by nvcc (kernels/CMakeLists:
// la3_simt_nvcc_check, so the CUDA build of simt.h stays valid) and by g++ under the
// emulation (tests/simt/simt_selfcheck_test.cc).
#pragma once

#include "kernels/block_reduce.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// Sum of `n` floats per block, through the shared block reduction (kernels/block_reduce.cuh).
__global__ void block_reduce_sum(const float* in, float* out, int n) {
  LA3_DYNAMIC_SHARED(float, per_warp);
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const float total = block_sum(i < n ? in[i] : 0.0f, per_warp);
  if (threadIdx.x == 0) out[blockIdx.x] = total;
}

}  // namespace la3::kernels
