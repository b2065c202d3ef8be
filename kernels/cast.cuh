// bf16 <-> fp32 conversion kernels (grid-stride, one element per thread per iteration).
// Launched by engine/cuda/convert_cuda.cc (Backend::convert) and engine/cuda/gemm_cuda.cc (the
// bf16 GEMM operands). Kept apart from kernels/bf16.cuh, which holds device functions only.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kCastThreads = 256;

// out[i] = in[i] converted (From, To in {float, uint16_t bf16 bits}; kernels/bf16.cuh).
template <typename From, typename To>
__global__ void convert_kernel(int64_t count, const From* in, To* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    store_act(out, i, load_act(in, i));
  }
}

// --- launchers (kernels/launch.h) ---------------------------------------------------------------

template <typename Launch, typename From, typename To>
void launch_convert(const Launch& launch, int64_t count, const From* in, To* out) {
  if (count == 0) return;
  const int64_t blocks = std::clamp<int64_t>((count + kCastThreads - 1) / kCastThreads, 1, 4096);
  launch(convert_kernel<From, To>, dim3(static_cast<unsigned>(blocks)), dim3(kCastThreads), 0, count, in, out);
}
template <typename Launch>
void launch_cast_f32_to_bf16(const Launch& launch, int64_t count, const float* in, uint16_t* out) {
  launch_convert(launch, count, in, out);
}

}  // namespace la3::kernels
