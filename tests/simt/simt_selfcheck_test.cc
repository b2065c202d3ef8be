// The self-check kernel (kernels/simt/simt_selfcheck.cuh, also compiled by nvcc) under the
// emulation: block sums for sizes that are not multiples of the block.
#include "kernels/simt/simt_selfcheck.cuh"

#include <gtest/gtest.h>

#include <vector>

namespace {

TEST(SimtSelfCheck, BlockReduceSum) {
  const int n = 1000, threads = 128, blocks = (n + threads - 1) / threads;
  std::vector<float> in(n), out(static_cast<size_t>(blocks), -1.0f);
  for (int i = 0; i < n; ++i) in[static_cast<size_t>(i)] = static_cast<float>((i * 7) % 11);
  la3::simt::launch(la3::kernels::block_reduce_sum, dim3(blocks), dim3(threads), (threads / 32) * sizeof(float),
                    nullptr, in.data(), out.data(), n);
  for (int b = 0; b < blocks; ++b) {
    float expected = 0.0f;
    for (int i = b * threads; i < std::min(n, (b + 1) * threads); ++i) expected += in[static_cast<size_t>(i)];
    EXPECT_EQ(out[static_cast<size_t>(b)], expected) << "block " << b;
  }
}

}  // namespace
