// Cross-entropy and embedding CUDA kernels under the SIMT emulation against the CPU backend.
#include "kernels/cross_entropy.cuh"
#include "kernels/embedding.cuh"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/backend.h"

namespace {

la3::Backend& cpu() { return la3::backend_for(la3::Device::cpu()); }

TEST(CrossEntropyKernels, ForwardAndBackwardMatchTheCpuBackend) {
  const int64_t rows = 6, vocab = 1001;  // vocab not a multiple of the block
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  std::vector<float> logits(static_cast<size_t>(rows * vocab));
  for (float& v : logits) v = dist(rng);
  logits[5] = 300.0f;  // a dominant logit: large exponent differences, subnormals flushed
  const std::vector<int64_t> labels = {5, -100, 0, 1000, 17, 999};
  const std::vector<float> weights = {0.5f, 0.5f, -1.0f, 0.25f, 2.0f, 1.0f};
  la3::kernels::CrossEntropyParams p;
  p.rows = rows;
  p.vocab = vocab;
  std::vector<float> loss(rows), lse(rows), loss_cpu(rows), lse_cpu(rows);
  la3::kernels::launch_cross_entropy_forward(la3::kernels::SimtLaunch{}, p, logits.data(), labels.data(), loss.data(),
                                             lse.data());
  cpu().cross_entropy_forward(p, la3::DType::kF32, logits.data(), labels.data(), loss_cpu.data(), lse_cpu.data());
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_NEAR(lse[static_cast<size_t>(r)], lse_cpu[static_cast<size_t>(r)], 2e-5f * std::abs(lse_cpu[static_cast<size_t>(r)]) + 1e-5f);
    EXPECT_NEAR(loss[static_cast<size_t>(r)], loss_cpu[static_cast<size_t>(r)], 2e-5f * std::abs(loss_cpu[static_cast<size_t>(r)]) + 1e-5f) << r;
  }
  EXPECT_EQ(loss[1], 0.0f);  // ignored row
  std::vector<float> grad(logits.size(), -7.0f), grad_cpu(logits.size());
  la3::kernels::launch_cross_entropy_backward(la3::kernels::SimtLaunch{}, p, logits.data(), labels.data(),
                                              lse_cpu.data(), weights.data(), grad.data());
  cpu().cross_entropy_backward(p, la3::DType::kF32, logits.data(), labels.data(), lse_cpu.data(), weights.data(), grad_cpu.data());
  for (size_t i = 0; i < grad.size(); ++i) ASSERT_NEAR(grad[i], grad_cpu[i], 1e-6f) << "element " << i;
  for (int64_t c = 0; c < vocab; ++c) EXPECT_EQ(grad[static_cast<size_t>(vocab + c)], 0.0f);  // ignored row
}

TEST(EmbeddingKernels, GatherAndScatterAddMatchTheCpuBackend) {
  const la3::kernels::EmbeddingParams p{7, 11, 37};
  const std::vector<int64_t> ids = {3, 0, 3, 10, 3, 5, 0};
  std::vector<float> table(11 * 37), dout(7 * 37);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : table) v = dist(rng);
  for (float& v : dout) v = dist(rng);
  std::vector<float> out(7 * 37), out_cpu(7 * 37), dtable(table.size(), 0.25f), dtable_cpu(table.size(), 0.25f);
  la3::kernels::launch_embedding_forward(la3::kernels::SimtLaunch{}, p, ids.data(), table.data(), out.data());
  cpu().embedding_forward(p, la3::DType::kF32, ids.data(), table.data(), out_cpu.data());
  EXPECT_EQ(out, out_cpu);
  la3::kernels::launch_embedding_backward(la3::kernels::SimtLaunch{}, p, ids.data(), dout.data(), dtable.data());
  cpu().embedding_backward(p, la3::DType::kF32, ids.data(), dout.data(), dtable_cpu.data());
  for (size_t i = 0; i < dtable.size(); ++i) ASSERT_NEAR(dtable[i], dtable_cpu[i], 1e-6f) << "element " << i;
}

}  // namespace
