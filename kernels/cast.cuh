// bf16 <-> fp32 cast kernels (grid-stride, one element per thread per iteration). Launched by
// engine/cuda/gemm_cuda.cc (the bf16 GEMM operands, Backend::cast_to_bf16). Kept apart from
// kernels/bf16.cuh because a __global__ function may be defined in one translation unit only.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kCastThreads = 256;

__global__ void cast_f32_to_bf16_kernel(int64_t count, const float* in, uint16_t* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    out[i] = to_bf16_bits(in[i]);
  }
}

__global__ void cast_bf16_to_f32_kernel(int64_t count, const uint16_t* in, float* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    out[i] = from_bf16_bits(in[i]);
  }
}

// --- launcher (kernels/launch.h) ---------------------------------------------------------------

template <typename Launch>
void launch_cast_f32_to_bf16(const Launch& launch, int64_t count, const float* in, uint16_t* out) {
  if (count == 0) return;
  const int64_t blocks = std::clamp<int64_t>((count + kCastThreads - 1) / kCastThreads, 1, 4096);
  launch(cast_f32_to_bf16_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kCastThreads), 0, count, in, out);
}

}  // namespace la3::kernels
