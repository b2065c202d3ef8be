// Incremental-decoding kernels (kernels/decoding.cuh) under the SIMT emulation against the CPU
// backend, in every thread order: the cache write, the in-place beam reorder, the logits
// processors and top-k (ties, -inf rows, k up to n).
#include "kernels/decoding.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "tests/simt/simt_modes.h"

namespace {

using la3::kernels::kDecodingThreads;

la3::Backend& cpu() { return la3::backend_for(la3::Device::cpu()); }

class DecodingKernels : public la3::testing::SimtModeTest {};

TEST_P(DecodingKernels, CacheWriteFillsOnePositionPerRow) {
  la3::kernels::CacheWriteParams p;
  p.rows = 3;
  p.width = 5;
  p.dst_row_stride = 4 * 5;  // max length 4
  p.dst_offset = 2 * 5;      // position 2
  std::vector<float> step(15);
  for (size_t i = 0; i < step.size(); ++i) step[i] = static_cast<float>(i) + 0.5f;
  std::vector<float> cache(60, -1.0f), cache_cpu(60, -1.0f);
  la3::kernels::launch_cache_write(la3::kernels::SimtLaunch{}, p, step.data(), cache.data());
  cpu().cache_write(p, la3::DType::kF32, step.data(), cache_cpu.data());
  EXPECT_EQ(cache, cache_cpu);
  EXPECT_EQ(cache[1 * 20 + 10 + 3], step[5 + 3]);  // row 1, position 2, element 3
  EXPECT_EQ(cache[1 * 20 + 5 + 3], -1.0f);         // position 1 untouched
}

TEST_P(DecodingKernels, ReorderGathersRowsInPlaceWithinGroups) {
  la3::kernels::RowReorderParams p;
  p.segments = 2;
  p.rows = 6;
  p.group = 3;
  p.row_stride = 40;
  p.segment_stride = 6 * 40;
  p.width = 37;  // the filled prefix; the rest of each row stays
  std::vector<float> data(static_cast<size_t>(p.segments * p.segment_stride));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i);
  const std::vector<int64_t> sources = {2, 2, 0, 3, 5, 4};  // a copy, a swap and a keep
  std::vector<float> emulated = data, reference = data;
  // 37 columns on one partial column tile.
  la3::kernels::launch_reorder_rows(la3::kernels::SimtLaunch{}, p, sources.data(), emulated.data());
  cpu().reorder_rows(p, la3::DType::kF32, sources.data(), reference.data());
  EXPECT_EQ(emulated, reference);
  for (int64_t s = 0; s < p.segments; ++s) {
    for (int64_t r = 0; r < p.rows; ++r) {
      for (int64_t e = 0; e < p.row_stride; ++e) {
        const int64_t from = e < p.width ? sources[static_cast<size_t>(r)] : r;
        ASSERT_EQ(reference[static_cast<size_t>(s * p.segment_stride + r * p.row_stride + e)],
                  data[static_cast<size_t>(s * p.segment_stride + from * p.row_stride + e)])
            << s << " " << r << " " << e;
      }
    }
  }
}

TEST_P(DecodingKernels, LogitsProcessorsMatchTheCpuBackend) {
  const int64_t rows = 3, vocab = 701, len = 7;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-6.0f, 6.0f);
  std::vector<float> logits(static_cast<size_t>(rows * vocab));
  for (float& v : logits) v = dist(rng);
  // Row 0 repeats the bigram (4, 9): 9 -> ... ends with 4, so 9 is banned for n = 2;
  // repeated tokens are penalised once; row 2 holds an id outside the vocabulary (ignored).
  const std::vector<int64_t> history = {0, 4, 9, 9, 700, 3, 4,  //
                                        0, 5, 6, 7, 5, 6, 8,    //
                                        0, 1000, 3, 3, 3, 3, 3};
  const std::vector<float> beam_scores = {-0.5f, -1.25f, -3.0f};
  for (int mode = 0; mode < 3; ++mode) {
    SCOPED_TRACE(mode);
    la3::kernels::LogitsProcessParams p;
    p.rows = rows;
    p.vocab = vocab;
    p.history_len = len;
    p.eos = 1;
    p.ban_eos = 1;
    p.no_repeat_ngram = 2;
    p.repetition_penalty = 1.7f;
    p.log_softmax = mode == 0 ? 1 : 0;            // beam search
    p.temperature = mode == 2 ? 0.7 : 1.0;        // sampling
    const float* scores = mode == 0 ? beam_scores.data() : nullptr;
    std::vector<float> out(logits.size()), out_cpu(logits.size()), lp(logits.size()), lp_cpu(logits.size());
    la3::kernels::launch_process_logits(la3::kernels::SimtLaunch{}, p, logits.data(), history.data(), scores, out.data(),
                                        mode == 1 ? lp.data() : nullptr);
    cpu().process_logits(p, la3::DType::kF32, logits.data(), history.data(), scores, out_cpu.data(),
                         mode == 1 ? lp_cpu.data() : nullptr);
    for (size_t i = 0; i < out.size(); ++i) {
      if (std::isinf(out_cpu[i])) {
        ASSERT_EQ(out[i], out_cpu[i]) << i;
      } else {
        ASSERT_NEAR(out[i], out_cpu[i], 2e-5f * std::abs(out_cpu[i]) + 2e-6f) << i;
      }
      if (mode == 1) {
        ASSERT_NEAR(lp[i], lp_cpu[i], 2e-5f * std::abs(lp_cpu[i]) + 2e-6f) << i;
      }
    }
    // What the processors did, on the reference: eos and the n-gram continuation banned,
    // a repeated token penalised exactly once.
    EXPECT_EQ(out_cpu[1], -INFINITY);  // eos
    EXPECT_EQ(out_cpu[9], -INFINITY);  // row 0: (4, 9) seen and the history ends with 4
    EXPECT_EQ(out_cpu[static_cast<size_t>(2 * vocab + 3)], -INFINITY);  // row 2: (3, 3) repeats
    if (mode == 1) {
      // Row 1 holds token 5 twice: divided (or multiplied) by the penalty once.
      const float raw = logits[static_cast<size_t>(vocab + 5)];
      EXPECT_EQ(out_cpu[static_cast<size_t>(vocab + 5)], raw < 0 ? raw * 1.7f : raw / 1.7f);
    }
  }
}

TEST_P(DecodingKernels, TopKMatchesTheCpuBackendWithTiesAndInfinities) {
  const int64_t groups = 3, n = 1000;
  std::mt19937 rng(6);
  std::uniform_int_distribution<int> coarse(-20, 20);  // many equal scores: ties by index
  std::vector<float> scores(static_cast<size_t>(groups * n)), companion(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    scores[i] = static_cast<float>(coarse(rng)) * 0.25f;
    companion[i] = static_cast<float>(i);
  }
  for (int64_t i = 0; i < n; ++i) scores[static_cast<size_t>(2 * n + i)] = i % 7 == 0 ? 1.0f : -INFINITY;
  for (int64_t k : {int64_t{1}, int64_t{10}, int64_t{200}}) {
    SCOPED_TRACE(k);
    la3::kernels::TopKParams p{groups, n, k};
    std::vector<int64_t> idx(static_cast<size_t>(groups * k)), idx_cpu(idx.size());
    std::vector<float> val(idx.size()), val_cpu(idx.size()), com(idx.size()), com_cpu(idx.size());
    la3::kernels::launch_top_k(la3::kernels::SimtLaunch{}, p, scores.data(), companion.data(), idx.data(), val.data(),
                               com.data());
    cpu().top_k(p, scores.data(), companion.data(), idx_cpu.data(), val_cpu.data(), com_cpu.data());
    EXPECT_EQ(idx, idx_cpu);
    EXPECT_EQ(val, val_cpu);
    EXPECT_EQ(com, com_cpu);
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t j = 1; j < k; ++j) {
        const size_t a = static_cast<size_t>(g * k + j - 1), b = a + 1;
        ASSERT_TRUE(val_cpu[a] > val_cpu[b] || (val_cpu[a] == val_cpu[b] && idx_cpu[a] < idx_cpu[b])) << g << " " << j;
      }
    }
  }
  // Group 2: 143 scores of 1 (every 7th index), then -inf in index order.
  la3::kernels::TopKParams p{groups, n, 200};
  std::vector<int64_t> idx(600);
  std::vector<float> val(600);
  la3::kernels::launch_top_k(la3::kernels::SimtLaunch{}, p, scores.data(), static_cast<const float*>(nullptr), idx.data(),
                             val.data(), static_cast<float*>(nullptr));
  EXPECT_EQ(idx[400 + 142], 994);
  EXPECT_EQ(val[400 + 143], -INFINITY);
  EXPECT_EQ(idx[400 + 143], 1);
}

INSTANTIATE_TEST_SUITE_P(Orders, DecodingKernels, ::testing::Values("forward", "reverse", "shuffled/2"),
                         la3::testing::simt_mode_name);

}  // namespace
