// What the pointwise kernel families share (kernels/elementwise.cuh, activation.cuh,
// dropout.cuh, adamw.cuh): one thread per element, grid-stride loops, so any launch size
// covers any count, and the launch shape the backend gives them. No __global__ function lives
// here: a kernel may be defined in one translation unit only (nvcc), and each family's
// engine/cuda/<op>_cuda.cc includes its own header.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kPointwiseThreads = 256;
// At most 1024 blocks of 256 threads: one wave on an H100 (132 SMs x 2048 threads); larger
// counts loop.
constexpr int64_t kPointwiseMaxBlocks = 1024;

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// The grid of a pointwise launch over `count` elements (at least one block).
inline dim3 pointwise_grid(int64_t count) {
  const int64_t blocks = (count + kPointwiseThreads - 1) / kPointwiseThreads;
  return dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kPointwiseMaxBlocks)));
}

// The launch every pointwise launcher makes (kernels/launch.h): `kernel(args...)` over
// `count` elements on pointwise_grid(count), nothing when count is 0.
template <typename Launch, typename Kernel, typename... Args>
void launch_pointwise(const Launch& launch, Kernel kernel, int64_t count, Args&&... args) {
  if (count > 0) launch(kernel, pointwise_grid(count), dim3(kPointwiseThreads), 0, std::forward<Args>(args)...);
}

}  // namespace la3::kernels
