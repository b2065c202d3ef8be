// Whole-tensor reductions: the sum of squares behind the global gradient norm (clipping).
// Each block accumulates in double over a grid-stride loop and writes one partial sum; the
// host adds the (few) partials, so the result does not depend on a float atomic order.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kReduceThreads = 256;
constexpr unsigned int kReduceMaxBlocks = 256;

__global__ void sum_of_squares_kernel(int64_t count, const float* x, double* partials) {
  LA3_SHARED(double, warp_sums, [kReduceThreads / 32]);
  double sum = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const double value = x[i];
    sum += value * value;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    double total = lane < blockDim.x / 32 ? warp_sums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
    if (lane == 0) partials[blockIdx.x] = total;
  }
}

// --- launcher (kernels/launch.h) ---------------------------------------------------------------

// The partial sums one launch writes for `count` elements (0 for an empty buffer).
inline int64_t sum_of_squares_blocks(int64_t count) {
  if (count == 0) return 0;
  return std::clamp<int64_t>((count + kReduceThreads - 1) / kReduceThreads, 1, kReduceMaxBlocks);
}

// partials[0 .. sum_of_squares_blocks(count)) receive the blocks' sums of x[i]^2 (double); the
// caller adds them in index order.
template <typename Launch>
void launch_sum_of_squares(const Launch& launch, int64_t count, const float* x, double* partials) {
  const int64_t blocks = sum_of_squares_blocks(count);
  if (blocks > 0) launch(sum_of_squares_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kReduceThreads), 0, count, x, partials);
}

}  // namespace la3::kernels
