// The SIMT emulation: block barriers with shared memory, warp shuffles (also inside
// `if (warp == 0)`), thread orders that expose a missing barrier, and deadlock reports.
#include "kernels/simt/simt.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/simt/simt_modes.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using ::testing::HasSubstr;

// Tree reduction in shared memory: one partial sum per block.
__global__ void block_sum(const float* in, float* out, int n) {
  LA3_SHARED(float, partial, [256]);
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  partial[threadIdx.x] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Warp reduction with shuffles; only warp 0 of the block does the second stage.
__global__ void warp_sum(const int* in, int* out) {
  LA3_SHARED(int, per_warp, [4]);
  int value = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_down_sync(0xffffffffu, value, offset);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) per_warp[warp] = value;
  __syncthreads();
  if (warp == 0) {
    int total = lane < blockDim.x / 32 ? per_warp[lane] : 0;
    for (int mask = 16; mask > 0; mask /= 2) total += __shfl_xor_sync(0xffffffffu, total, mask);
    if (lane == 0) out[blockIdx.x] = total;
  }
}

// Reads the neighbour's shared slot; with_barrier = false is the classic missing __syncthreads.
__global__ void neighbour(int* out, bool with_barrier) {
  LA3_SHARED(int, slots, [64]);
  slots[threadIdx.x] = static_cast<int>(threadIdx.x) * 10;
  if (with_barrier) __syncthreads();
  out[threadIdx.x] = slots[(threadIdx.x + blockDim.x - 1) % blockDim.x];
}

__global__ void divergent_deadlock(int* out) {
  int value = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    value = __shfl_sync(0xffffffffu, value, 0);
  }
  out[threadIdx.x] = value;
}

// Block-wide vote and warp votes.
__global__ void votes(const int* in, int* out) {
  const int mine = in[threadIdx.x];
  const int count = __syncthreads_count(mine > 0);
  const int all = __syncthreads_and(mine > 0);
  const int any = __syncthreads_or(mine > 0);
  const unsigned bits = __ballot_sync(0xffffffffu, mine > 0);
  const bool warp_any = __any_sync(0xffffffffu, mine > 0);
  const bool warp_all = __all_sync(0xffffffffu, mine > 0);
  __syncwarp();
  if (threadIdx.x % 32 == 0) {
    const unsigned w = threadIdx.x / 32;
    out[5 * w + 0] = count;
    out[5 * w + 1] = all;
    out[5 * w + 2] = any;
    out[5 * w + 3] = static_cast<int>(bits);
    out[5 * w + 4] = (warp_any ? 1 : 0) + (warp_all ? 2 : 0);
  }
}

// Dynamic shared memory: poisoned with NaN before each block, then a block-wide exchange.
__global__ void dynamic_exchange(float* out, float* first_read) {
  LA3_DYNAMIC_SHARED(float, buffer);
  if (threadIdx.x == 0) first_read[blockIdx.x] = buffer[blockDim.x - 1];  // read before any write
  __syncthreads();
  buffer[threadIdx.x] = static_cast<float>(blockIdx.x * 100 + threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = buffer[blockDim.x - 1 - threadIdx.x];
}

__global__ void atomic_histogram(const int* in, int* bins, float* total) {
  atomicAdd(&bins[in[threadIdx.x] % 4], 1);
  atomicAdd(total, 0.5f);
}

// Threads 16..31 return early; 0..15 wait at a barrier: tolerated normally, an error in
// strict mode.
__global__ void early_return_then_barrier(int* out) {
  if (threadIdx.x >= 16) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// Inclusive prefix sum over a block: a Hillis-Steele scan within each warp (__shfl_up_sync),
// then the warp totals scanned by warp 0 through shared memory.
__global__ void block_inclusive_scan(const int* in, int* out, int n) {
  LA3_SHARED(int, warp_totals, [32]);
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int value = i < n ? in[i] : 0;
  for (int delta = 1; delta < 32; delta *= 2) {
    const int other = __shfl_up_sync(0xffffffffu, value, delta);
    if (static_cast<int>(lane) >= delta) value += other;
  }
  if (lane == 31) warp_totals[warp] = value;
  __syncthreads();
  if (warp == 0) {
    int total = lane < blockDim.x / 32 ? warp_totals[lane] : 0;
    for (int delta = 1; delta < 32; delta *= 2) {
      const int other = __shfl_up_sync(0xffffffffu, total, delta);
      if (static_cast<int>(lane) >= delta) total += other;
    }
    if (lane < blockDim.x / 32) warp_totals[lane] = total;
  }
  __syncthreads();
  if (warp > 0) value += warp_totals[warp - 1];
  if (i < n) out[i] = value;
}

__global__ void throws_in_kernel(int* out) {
  if (threadIdx.x == 3) throw std::runtime_error("kernel failure at thread 3");
  out[threadIdx.x] = 1;
}

class SimtOrder : public la3::testing::SimtModeTest {};

TEST_P(SimtOrder, BlockReductionWithSharedMemoryAndBarriers) {
  const int n = 1000;  // not a multiple of the block size
  std::vector<float> in(n), out(4, -1.0f);
  for (int i = 0; i < n; ++i) in[static_cast<size_t>(i)] = static_cast<float>(i % 7);
  la3::simt::launch(block_sum, dim3(4), dim3(256), 0, nullptr, in.data(), out.data(), n);
  for (int b = 0; b < 4; ++b) {
    float expected = 0.0f;
    for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i) expected += in[static_cast<size_t>(i)];
    EXPECT_EQ(out[static_cast<size_t>(b)], expected) << "block " << b;
  }
}

TEST_P(SimtOrder, WarpShufflesIncludingACollectiveInsideOneWarp) {
  std::vector<int> in(2 * 128), out(2, 0);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i);
  la3::simt::launch(warp_sum, dim3(2), dim3(128), 0, nullptr, in.data(), out.data());
  EXPECT_EQ(out[0], 127 * 128 / 2);
  EXPECT_EQ(out[1], (255 * 256 - 127 * 128) / 2);
}

TEST_P(SimtOrder, BlockScanWithShuffleUp) {
  const int n = 700;  // blocks of 256: the last one partial
  std::vector<int> in(n), out(n, -1);
  for (int i = 0; i < n; ++i) in[static_cast<size_t>(i)] = (i * 37) % 11 - 5;
  la3::simt::launch(block_inclusive_scan, dim3(3), dim3(256), 0, nullptr, in.data(), out.data(), n);
  for (int b = 0; b < 3; ++b) {
    int running = 0;
    for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i) {
      running += in[static_cast<size_t>(i)];
      ASSERT_EQ(out[static_cast<size_t>(i)], running) << "element " << i;
    }
  }
}

TEST_P(SimtOrder, WithTheBarrierEveryOrderIsRight) {
  std::vector<int> out(64, -1);
  la3::simt::launch(neighbour, dim3(1), dim3(64), 0, nullptr, out.data(), true);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(out[static_cast<size_t>(i)], ((i + 63) % 64) * 10);
}

TEST_P(SimtOrder, BlockAndWarpVotes) {
  std::vector<int> in(64), out(10, -1);
  for (int i = 0; i < 64; ++i) in[static_cast<size_t>(i)] = i < 32 ? 1 : (i % 3 == 0 ? 1 : 0);
  la3::simt::launch(votes, dim3(1), dim3(64), 0, nullptr, in.data(), out.data());
  unsigned expected_bits = 0;
  for (int l = 0; l < 32; ++l) expected_bits |= (in[static_cast<size_t>(32 + l)] > 0 ? 1u : 0u) << l;
  const int positives = 32 + 11;  // 32..63 has 11 multiples of 3
  for (int w = 0; w < 2; ++w) {
    EXPECT_EQ(out[static_cast<size_t>(5 * w + 0)], positives);
    EXPECT_EQ(out[static_cast<size_t>(5 * w + 1)], 0);
    EXPECT_EQ(out[static_cast<size_t>(5 * w + 2)], 1);
  }
  EXPECT_EQ(static_cast<unsigned>(out[3]), 0xffffffffu);
  EXPECT_EQ(out[4], 3);  // warp 0: any and all
  EXPECT_EQ(static_cast<unsigned>(out[8]), expected_bits);
  EXPECT_EQ(out[9], 1);  // warp 1: any, not all
}

TEST_P(SimtOrder, DynamicSharedMemoryIsPoisonedPerBlockAndShared) {
  const unsigned threads = 48;
  std::vector<float> out(2 * threads), first(2, 0.0f);
  la3::simt::launch(dynamic_exchange, dim3(2), dim3(threads), threads * sizeof(float), nullptr, out.data(),
                    first.data());
  EXPECT_TRUE(std::isnan(first[0]));
  EXPECT_TRUE(std::isnan(first[1]));  // poisoned again before block 1
  for (unsigned b = 0; b < 2; ++b) {
    for (unsigned t = 0; t < threads; ++t) EXPECT_EQ(out[b * threads + t], static_cast<float>(b * 100 + threads - 1 - t));
  }
}

TEST_P(SimtOrder, Atomics) {
  std::vector<int> in(100), bins(4, 0);
  for (int i = 0; i < 100; ++i) in[static_cast<size_t>(i)] = i;
  float total = 0.0f;
  la3::simt::launch(atomic_histogram, dim3(3), dim3(100), 0, nullptr, in.data(), bins.data(), &total);
  EXPECT_EQ(bins, (std::vector<int>{75, 75, 75, 75}));
  EXPECT_EQ(total, 150.0f);
}

INSTANTIATE_TEST_SUITE_P(Orders, SimtOrder, ::testing::Values("forward", "reverse", "shuffled", "shuffled/2"), la3::testing::simt_mode_name);

TEST(Simt, InvalidLaunchesAreRefused) {
  std::vector<int> out(2048, 0);
  EXPECT_THROW(la3::simt::launch(neighbour, dim3(1), dim3(2048), 0, nullptr, out.data(), true), std::invalid_argument);
  EXPECT_THROW(la3::simt::launch(neighbour, dim3(0), dim3(32), 0, nullptr, out.data(), true), std::invalid_argument);
  EXPECT_THROW(la3::simt::launch(neighbour, dim3(1), dim3(32), 64 * 1024, nullptr, out.data(), true),
               std::invalid_argument);
  setenv("LA3_SIMT_ORDER", "sideways", 1);
  EXPECT_THROW(la3::simt::launch(neighbour, dim3(1), dim3(32), 0, nullptr, out.data(), true), std::invalid_argument);
  unsetenv("LA3_SIMT_ORDER");
}

TEST(Simt, AMissingBarrierIsCaughtInReverseOrder) {
  std::vector<int> out(64, -1);
  setenv("LA3_SIMT_ORDER", "reverse", 1);
  la3::simt::launch(neighbour, dim3(1), dim3(64), 0, nullptr, out.data(), false);
  unsetenv("LA3_SIMT_ORDER");
  int wrong = 0;
  for (int i = 0; i < 64; ++i) wrong += out[static_cast<size_t>(i)] != ((i + 63) % 64) * 10 ? 1 : 0;
  EXPECT_GT(wrong, 60);  // in reverse order almost every neighbour has not written yet
}

TEST(Simt, DeadlockIsReportedWithTheWaitingLines) {
  std::vector<int> out(32, 0);
  try {
    la3::simt::launch(divergent_deadlock, dim3(1), dim3(32), 0, nullptr, out.data());
    FAIL() << "expected a deadlock report";
  } catch (const la3::simt::DeadlockError& error) {
    EXPECT_THAT(error.what(), HasSubstr("cannot make progress"));
    EXPECT_THAT(error.what(), HasSubstr("in __syncthreads at"));
    EXPECT_THAT(error.what(), HasSubstr("in a warp collective at"));
    EXPECT_THAT(error.what(), HasSubstr("simt_test.cc:"));
  }
}

TEST(Simt, StrictModeReportsADivergentBarrier) {
  std::vector<int> out(32, 0);
  la3::simt::launch(early_return_then_barrier, dim3(1), dim3(32), 0, nullptr, out.data());
  EXPECT_EQ(out[0], 1);  // tolerated (finished threads count as arrived)
  setenv("LA3_SIMT_STRICT", "1", 1);
  try {
    la3::simt::launch(early_return_then_barrier, dim3(1), dim3(32), 0, nullptr, out.data());
    ADD_FAILURE() << "expected a divergent-barrier report";
  } catch (const la3::simt::DeadlockError& error) {
    EXPECT_THAT(error.what(), HasSubstr("divergent __syncthreads"));
    EXPECT_THAT(error.what(), HasSubstr("16 thread(s) returned"));
  }
  unsetenv("LA3_SIMT_STRICT");
}

TEST(Simt, ExceptionsInAKernelReachTheLauncher) {
  std::vector<int> out(8, 0);
  EXPECT_THROW(la3::simt::launch(throws_in_kernel, dim3(1), dim3(8), 0, nullptr, out.data()), std::runtime_error);
}

}  // namespace
