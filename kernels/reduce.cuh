// Whole-tensor reductions: the sum of squares behind the global gradient norm (clipping).
// Each block accumulates in double over a grid-stride loop and writes one partial sum; the
// host adds the (few) partials, so the result does not depend on a float atomic order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/launch.h"
#include "kernels/multi_tensor.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kReduceThreads = 256;
constexpr unsigned int kReduceMaxBlocks = 256;

// One block's partial sum of x[i]^2 over a grid-stride loop, as if it were block `block` of a
// launch of `blocks` blocks over x alone: the single-buffer and the span-table kernels share it,
// so a buffer's partials are the same numbers whichever launch computed them.
__device__ __forceinline__ void sum_of_squares_block(int64_t count, const float* x, int64_t block, int64_t blocks,
                                                     double* warp_sums, double* partial) {
  double sum = 0.0;
  const int64_t stride = blocks * blockDim.x;
  for (int64_t i = block * blockDim.x + threadIdx.x; i < count; i += stride) {
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
    if (lane == 0) *partial = total;
  }
}

__global__ void sum_of_squares_kernel(int64_t count, const float* x, double* partials) {
  LA3_SHARED(double, warp_sums, [kReduceThreads / 32]);
  sum_of_squares_block(count, x, blockIdx.x, gridDim.x, warp_sums, partials + blockIdx.x);
}

// Several buffers in one launch (the gradient norm over every parameter tensor: one launch per
// kSumOfSquaresSpansPerLaunch tensors instead of one per tensor). Passed by value as a kernel
// parameter (well under the 4 KB limit); buffer s owns the launch's blocks
// [first_block[s], first_block[s + 1]).
constexpr int kSumOfSquaresSpansPerLaunch = 32;
struct SumOfSquaresSpans {
  int count = 0;  // buffers in this launch
  const float* data[kSumOfSquaresSpansPerLaunch] = {};
  int64_t elements[kSumOfSquaresSpansPerLaunch] = {};
  int64_t first_block[kSumOfSquaresSpansPerLaunch + 1] = {};
};

// Block b of the launch writes partials[b]: buffer s's partials are the slots
// [first_block[s], first_block[s + 1]), each what its own sum_of_squares_kernel launch writes.
__global__ void sum_of_squares_spans_kernel(SumOfSquaresSpans spans, double* partials) {
  LA3_SHARED(double, warp_sums, [kReduceThreads / 32]);
  const int s = table_owner_of_block(spans.first_block, spans.count, blockIdx.x);
  const int64_t first = spans.first_block[s];
  sum_of_squares_block(spans.elements[s], spans.data[s], blockIdx.x - first, spans.first_block[s + 1] - first,
                       warp_sums, partials + blockIdx.x);
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

// The buffers' partial sums in as few launches as the table allows: empty buffers take no
// block, the others go kSumOfSquaresSpansPerLaunch to a launch. Buffer k's partials land in
// partials[offset_k .. offset_k + sum_of_squares_blocks(count_k)), offset_k the sum of the
// blocks of the buffers before it: the slots and numbers one launch_sum_of_squares per buffer
// writes, so their sum in index order is bit-identical. Span is any type with `data` and
// `count` (Backend::Span). Returns the launches made.
template <typename Launch, typename Span>
int64_t launch_sum_of_squares_spans(const Launch& launch, const Span* spans, int64_t span_count, double* partials) {
  int64_t launches = 0;
  SumOfSquaresSpans table;
  int64_t table_blocks = 0;
  const auto flush = [&] {
    if (table.count == 0) return;
    declare_table_buffers(launch, "sum_of_squares_spans_kernel",
                          std::vector<const void*>(table.data, table.data + table.count));
    launch(sum_of_squares_spans_kernel, dim3(static_cast<unsigned>(table_blocks)), dim3(kReduceThreads), 0, table,
           partials);
    partials += table_blocks;
    ++launches;
    table = SumOfSquaresSpans{};
    table_blocks = 0;
  };
  for (int64_t k = 0; k < span_count; ++k) {
    const int64_t blocks = sum_of_squares_blocks(spans[k].count);
    if (blocks == 0) continue;
    table.data[table.count] = spans[k].data;
    table.elements[table.count] = spans[k].count;
    table.first_block[table.count] = table_blocks;
    table_blocks += blocks;
    table.first_block[++table.count] = table_blocks;
    if (table.count == kSumOfSquaresSpansPerLaunch) flush();
  }
  flush();
  return launches;
}

}  // namespace la3::kernels
