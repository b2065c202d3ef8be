// ops::attention against a direct double-precision implementation (forward) and central
// finite differences of it (backward, in q, k, v and the relative-position table), over
// odd sizes, both bucket directions, padding and causal masks, a cached-decoding offset,
// fully padded rows and dropout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/autograd/tape.h"
#include "engine/ops/attention.h"
#include "kernels/philox.cuh"
#include "kernels/relative_position.cuh"
#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
using testing::DoubleInputs;

struct Case {
  int64_t batch, heads, q_len, k_len, head_dim;
  bool with_bias, with_mask;
  ops::AttentionOptions options;
  std::vector<int32_t> mask;  // [batch, k_len] when with_mask
};

// The definition, in double: softmax over visible keys of scale q.k + bias, uniform when no
// key is visible, dropout with the same Philox decisions, times v.
std::vector<double> reference_attention(const Case& c, const DoubleInputs& in) {
  const std::vector<double>& q = in[0];
  const std::vector<double>& k = in[1];
  const std::vector<double>& v = in[2];
  const std::vector<double>* table = c.with_bias ? &in[3] : nullptr;
  const int64_t row = c.heads * c.head_dim;
  std::vector<double> out(static_cast<size_t>(c.batch * c.q_len * row), 0.0);
  const auto& o = c.options;
  const bool dropout = o.training && o.dropout.p > 0.0f;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t i = 0; i < c.q_len; ++i) {
        std::vector<double> s(static_cast<size_t>(c.k_len));
        std::vector<bool> visible(static_cast<size_t>(c.k_len));
        double max_score = -INFINITY;
        bool any = false;
        for (int64_t j = 0; j < c.k_len; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < c.head_dim; ++d) {
            dot += q[static_cast<size_t>((b * c.q_len + i) * row + h * c.head_dim + d)] *
                   k[static_cast<size_t>((b * c.k_len + j) * row + h * c.head_dim + d)];
          }
          double score = static_cast<double>(o.scale) * dot;
          if (table != nullptr) {
            const int bucket = kernels::t5_relative_position_bucket(static_cast<int>(j - (o.query_offset + i)),
                                                                    o.bidirectional, o.num_buckets, o.max_distance);
            score += (*table)[static_cast<size_t>(bucket * c.heads + h)];
          }
          const bool masked = (c.with_mask && c.mask[static_cast<size_t>(b * c.k_len + j)] == 0) ||
                              (o.causal && j > o.query_offset + i);
          visible[static_cast<size_t>(j)] = !masked;
          s[static_cast<size_t>(j)] = score;
          if (!masked) {
            any = true;
            max_score = std::max(max_score, score);
          }
        }
        std::vector<double> prob(static_cast<size_t>(c.k_len));
        double sum = 0.0;
        for (int64_t j = 0; j < c.k_len; ++j) {
          const size_t jj = static_cast<size_t>(j);
          prob[jj] = !any ? 1.0 : (visible[jj] ? std::exp(s[jj] - max_score) : 0.0);
          sum += prob[jj];
        }
        for (int64_t j = 0; j < c.k_len; ++j) {
          double pj = prob[static_cast<size_t>(j)] / sum;
          if (dropout) {
            const uint64_t index = static_cast<uint64_t>(((b * c.heads + h) * c.q_len + i) * c.k_len + j);
            pj = kernels::dropout_keep(o.dropout.p, o.dropout.seed, o.dropout.step, o.dropout.stream, index)
                     ? pj / (1.0 - static_cast<double>(o.dropout.p))
                     : 0.0;
          }
          for (int64_t d = 0; d < c.head_dim; ++d) {
            out[static_cast<size_t>((b * c.q_len + i) * row + h * c.head_dim + d)] +=
                pj * v[static_cast<size_t>((b * c.k_len + j) * row + h * c.head_dim + d)];
          }
        }
      }
    }
  }
  return out;
}

testing::GradCheckReport run_case(const std::string& name, const Case& c, uint32_t seed = 11) {
  std::mt19937 rng(seed);
  std::vector<Tensor> inputs = {
      testing::random_tensor({c.batch, c.q_len, c.heads, c.head_dim}, rng),
      testing::random_tensor({c.batch, c.k_len, c.heads, c.head_dim}, rng),
      testing::random_tensor({c.batch, c.k_len, c.heads, c.head_dim}, rng),
      c.with_bias ? testing::random_tensor({c.options.num_buckets, c.heads}, rng) : Tensor::zeros({1}),
  };
  const Tensor mask = c.with_mask ? Tensor::from_vector<int32_t>({c.batch, c.k_len}, c.mask) : Tensor();
  auto op = [&](const std::vector<Tensor>& x) {
    return ops::attention(x[0], x[1], x[2], c.with_bias ? x[3] : Tensor(), mask, c.options);
  };
  auto reference = [&](const DoubleInputs& x) { return reference_attention(c, x); };
  return testing::check_op(name, op, reference, inputs, {true, true, true, c.with_bias});
}

ops::AttentionOptions options(bool causal, int buckets = 8, int max_distance = 12) {
  ops::AttentionOptions o;
  o.causal = causal;
  o.bidirectional = !causal;
  o.num_buckets = buckets;
  o.max_distance = max_distance;
  return o;
}

TEST(Attention, EncoderStyleWithBiasAndPadding) {
  Case c{2, 3, 7, 7, 5, true, true, options(false), {}};
  c.mask = {1, 1, 1, 1, 1, 1, 1,  /**/ 1, 1, 1, 1, 0, 0, 0};
  const auto report = run_case("encoder", c);
  std::printf("[attention] encoder: forward %.3g, dq %.3g, dk %.3g, dv %.3g, dtable %.3g\n", report.forward_error,
              report.gradient_errors[0], report.gradient_errors[1], report.gradient_errors[2], report.gradient_errors[3]);
}

TEST(Attention, CausalDecoderWithBiasAndLongDistances) {
  // 19 positions with max_distance 12: the logarithmic and the clamped buckets are used.
  run_case("causal", Case{1, 2, 19, 19, 3, true, false, options(true, 10, 12), {}});
}

TEST(Attention, CrossAttentionWithoutBiasAndUnequalLengths) {
  Case c{2, 2, 5, 9, 4, false, true, options(false), {}};
  c.mask = {1, 1, 1, 1, 1, 1, 0, 0, 0, /**/ 1, 1, 1, 1, 1, 1, 1, 1, 1};
  run_case("cross", c);
}

TEST(Attention, CachedDecodingStepWithQueryOffset) {
  // Two new queries at positions 6 and 7 attending to 8 cached keys.
  ops::AttentionOptions o = options(true);
  o.query_offset = 6;
  run_case("offset", Case{1, 3, 2, 8, 4, true, false, o, {}});
}

TEST(Attention, LengthOneSequencesAndScale) {
  ops::AttentionOptions o = options(false);
  o.scale = 0.125f;
  run_case("length1", Case{3, 1, 1, 1, 6, true, false, o, {}});
}

TEST(Attention, FullyPaddedBatchItemIsUniformWithoutScoreGradient) {
  Case c{2, 2, 3, 4, 3, true, true, options(false), {}};
  c.mask = {1, 1, 0, 1, /**/ 0, 0, 0, 0};
  run_case("all-padding", c);
  // Item 1 attends uniformly: its output is the mean of its values, for every query and head.
  std::mt19937 rng(3);
  const Tensor q = testing::random_tensor({2, 3, 2, 3}, rng), k = testing::random_tensor({2, 4, 2, 3}, rng),
               v = testing::random_tensor({2, 4, 2, 3}, rng), table = testing::random_tensor({8, 2}, rng);
  const Tensor out = ops::attention(q, k, v, table, Tensor::from_vector<int32_t>({2, 4}, c.mask), c.options);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t h = 0; h < 2; ++h) {
      for (int64_t d = 0; d < 3; ++d) {
        double mean = 0.0;
        for (int64_t j = 0; j < 4; ++j) mean += v.item(((1 * 4 + j) * 2 + h) * 3 + d) / 4.0;
        EXPECT_NEAR(out.item(((1 * 3 + i) * 2 + h) * 3 + d), mean, 1e-6);
      }
    }
  }
}

TEST(Attention, DropoutUsesThePhiloxStreamAndIsReproducible) {
  ops::AttentionOptions o = options(false);
  o.training = true;
  o.dropout = kernels::DropoutParams{0.3f, 42, 5, 9};
  Case c{2, 2, 6, 6, 4, true, true, o, {}};
  c.mask = {1, 1, 1, 1, 1, 0, /**/ 1, 1, 1, 1, 1, 1};
  run_case("dropout", c);

  std::mt19937 rng(5);
  const Tensor q = testing::random_tensor({1, 6, 2, 4}, rng), k = testing::random_tensor({1, 6, 2, 4}, rng),
               v = testing::random_tensor({1, 6, 2, 4}, rng);
  const auto first = ops::attention(q, k, v, Tensor(), Tensor(), o).to_vector<float>();
  EXPECT_EQ(first, ops::attention(q, k, v, Tensor(), Tensor(), o).to_vector<float>());
  ops::AttentionOptions next_step = o;
  next_step.dropout.step = 6;
  EXPECT_NE(first, ops::attention(q, k, v, Tensor(), Tensor(), next_step).to_vector<float>());
  ops::AttentionOptions inference = o;
  inference.training = false;
  ops::AttentionOptions no_dropout = options(false);
  EXPECT_EQ(ops::attention(q, k, v, Tensor(), Tensor(), inference).to_vector<float>(),
            ops::attention(q, k, v, Tensor(), Tensor(), no_dropout).to_vector<float>());
}

TEST(Attention, BadInputsNameTheOpAndShapes) {
  const Tensor q = Tensor::zeros({2, 3, 4, 5}), k = Tensor::zeros({2, 6, 4, 5});
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const EngineError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message([&] { ops::attention(q, k, Tensor::zeros({2, 6, 4, 4}), Tensor(), Tensor()); }),
              HasSubstr("attention: shape mismatch: k is f32[2, 6, 4, 5] on cpu but v is f32[2, 6, 4, 4] on cpu"));
  EXPECT_THAT(message([&] { ops::attention(q, Tensor::zeros({2, 6, 3, 5}), Tensor::zeros({2, 6, 3, 5}), Tensor(), Tensor()); }),
              HasSubstr("attention: q f32[2, 3, 4, 5] on cpu and k f32[2, 6, 3, 5] on cpu must agree"));
  EXPECT_THAT(message([&] { ops::attention(q, k, k, Tensor::zeros({32, 3}), Tensor()); }),
              HasSubstr("bias_table f32[32, 3] on cpu must be [num_buckets, heads] = [32, 4]"));
  EXPECT_THAT(message([&] { ops::attention(q, k, k, Tensor(), Tensor::zeros({2, 5}, DType::kI32)); }),
              HasSubstr("key_mask i32[2, 5] on cpu must be [batch, k_len] = [2, 6]"));
  EXPECT_THAT(message([&] { ops::attention(q.to(DType::kBF16), k, k, Tensor(), Tensor()); }),
              HasSubstr("attention: q must be f32, got bf16[2, 3, 4, 5]"));
  EXPECT_THAT(message([&] { ops::attention(Tensor::zeros({2, 3, 20}), k, k, Tensor(), Tensor()); }),
              HasSubstr("attention: q must have 4 dimensions"));
}

}  // namespace
}  // namespace la3
