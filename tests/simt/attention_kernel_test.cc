// The fused attention CUDA kernels under the SIMT emulation against the CPU backend:
// encoder-style (bias, padding, a fully padded item), causal decoder with a cache offset,
// cross-attention without bias, dropout; forward output and dq, dk, dv, d(bias table).
#include "kernels/attention.cuh"

#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

#include "tests/simt/simt_modes.h"

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace {

using la3::kernels::AttentionParams;

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void check(const AttentionParams& p, const std::vector<int32_t>& mask, const char* name) {
  std::mt19937 rng(17);
  const size_t q_size = static_cast<size_t>(p.batch * p.q_len * p.heads * p.head_dim);
  const size_t kv_size = static_cast<size_t>(p.batch * p.k_len * p.heads * p.head_dim);
  const std::vector<float> q = random_values(q_size, rng), k = random_values(kv_size, rng), v = random_values(kv_size, rng),
                           table = random_values(static_cast<size_t>(p.num_buckets * p.heads), rng),
                           dout = random_values(q_size, rng);
  const int32_t* mask_data = p.has_key_mask ? mask.data() : nullptr;
  la3::Backend& cpu = la3::backend_for(la3::Device::cpu());
  std::vector<float> out_cpu(q_size), probs(static_cast<size_t>(p.batch * p.heads * p.q_len * p.k_len));
  cpu.attention_forward(p, q.data(), k.data(), v.data(), table.data(), mask_data, out_cpu.data(), probs.data());
  std::vector<float> dq_cpu(q_size), dk_cpu(kv_size), dv_cpu(kv_size), dbias_cpu(table.size(), 0.0f);
  cpu.attention_backward(p, dout.data(), q.data(), k.data(), v.data(), table.data(), mask_data, probs.data(), dq_cpu.data(),
                         dk_cpu.data(), dv_cpu.data(), dbias_cpu.data());

  const dim3 grid(static_cast<unsigned>(p.q_len), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  std::vector<float> out(q_size, -1.0f), lse(static_cast<size_t>(p.batch * p.heads * p.q_len));
  la3::simt::launch(la3::kernels::attention_forward_kernel, grid, dim3(la3::kernels::kAttentionThreads),
                    static_cast<size_t>(p.k_len) * sizeof(float), nullptr, p, q.data(), k.data(), v.data(),
                    table.data(), mask_data, out.data(), lse.data());
  std::vector<float> dq(q_size, -1.0f), dk(kv_size, 0.0f), dv(kv_size, 0.0f), dbias(table.size(), 0.0f);
  la3::simt::launch(la3::kernels::attention_backward_kernel, grid, dim3(la3::kernels::kAttentionThreads),
                    2 * static_cast<size_t>(p.k_len) * sizeof(float), nullptr, p, dout.data(), q.data(), k.data(),
                    v.data(), table.data(), mask_data, lse.data(), dq.data(), dk.data(), dv.data(), dbias.data());
  // f32 with other summation orders (and atomics for dk, dv, dbias): ~1e-6 relative.
  EXPECT_LT(la3::testing::normalized_error(out, out_cpu), 1e-11) << name << ": out";
  EXPECT_LT(la3::testing::normalized_error(dq, dq_cpu), 1e-10) << name << ": dq";
  EXPECT_LT(la3::testing::normalized_error(dk, dk_cpu), 1e-10) << name << ": dk";
  EXPECT_LT(la3::testing::normalized_error(dv, dv_cpu), 1e-10) << name << ": dv";
  if (p.has_bias) {
    EXPECT_LT(la3::testing::normalized_error(dbias, dbias_cpu), 1e-10) << name << ": dbias";
  }
}

class AttentionKernel : public la3::testing::SimtModeTest {};

TEST_P(AttentionKernel, MatchesTheCpuBackend) {
  AttentionParams encoder;
  encoder.batch = 2; encoder.heads = 3; encoder.q_len = 7; encoder.k_len = 7; encoder.head_dim = 5;
  encoder.has_bias = true; encoder.bidirectional = true; encoder.num_buckets = 8; encoder.max_distance = 12;
  encoder.has_key_mask = true;
  check(encoder, {1, 1, 1, 1, 1, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 0}, "encoder, padding, fully padded item");

  AttentionParams decoder = encoder;
  decoder.batch = 1; decoder.q_len = 2; decoder.k_len = 19; decoder.causal = true; decoder.bidirectional = false;
  decoder.query_offset = 17; decoder.has_key_mask = false; decoder.num_buckets = 10; decoder.max_distance = 12;
  check(decoder, {}, "causal decoder step with cache offset");

  AttentionParams cross = encoder;
  cross.q_len = 4; cross.k_len = 9; cross.has_bias = false;
  check(cross, std::vector<int32_t>(18, 1), "cross-attention without bias");

  AttentionParams dropped = encoder;
  dropped.has_key_mask = false;
  dropped.dropout = la3::kernels::DropoutParams{0.3f, 42, 5, 9};
  check(dropped, {}, "dropout on the probabilities");
}

INSTANTIATE_TEST_SUITE_P(Orders, AttentionKernel, ::testing::Values("forward", "reverse", "shuffled/2"), la3::testing::simt_mode_name);

}  // namespace
