// ops::attention (and the CPU backend behind it) against its documented semantics
// (engine/ops/attention.h):
//   - forward against a direct double-precision implementation, backward (q, k, v, bias
//     table) against central finite differences of it (la3::testing::check_op);
//   - sizes that are multiples of nothing, with and without the relative-position table,
//     bidirectional and causal buckets, cached-decoding query offsets, padding masks that
//     leave some query rows with no visible key, fully padded batch items, length 1,
//     scale != 1, Philox dropout on the probabilities (keyed by global row, absolute query
//     and key, so a batch item's mask ignores padding, the batch split and cached decoding);
//   - the backend contract (dq/dk/dv overwritten, dbias accumulated, probs saved pre-dropout);
//   - bad input -> EngineError naming the op and the shapes.
// The bucket function itself is checked against transformers in relative_position_test.cc;
// the reference here calls it directly.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/attention.h"
#include "kernels/philox.cuh"
#include "kernels/relative_position.cuh"
#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
using testing::DoubleInputs;

struct AttentionCase {
  int64_t batch = 1, heads = 1, q_len = 1, k_len = 1, head_dim = 1;
  bool with_bias = false;
  std::vector<int32_t> key_mask;  // [batch, k_len]; empty = no mask
  ops::AttentionOptions options;

  Shape q_shape() const { return {batch, q_len, heads, head_dim}; }
  Shape kv_shape() const { return {batch, k_len, heads, head_dim}; }
};

struct Sizes {
  int64_t batch, heads, q_len, k_len, head_dim;
};

AttentionCase make_case(const Sizes& sizes, bool with_bias) {
  AttentionCase c;
  c.batch = sizes.batch;
  c.heads = sizes.heads;
  c.q_len = sizes.q_len;
  c.k_len = sizes.k_len;
  c.head_dim = sizes.head_dim;
  c.with_bias = with_bias;
  return c;
}

size_t at(int64_t index) { return static_cast<size_t>(index); }

// The documented Philox key of probability (b, h, i, j), written out rather than through the
// helper the backends share.
uint64_t documented_key(int64_t row_offset, int64_t heads, int64_t query_offset, int64_t b, int64_t h, int64_t i,
                        int64_t j) {
  const uint64_t global_row = static_cast<uint64_t>((row_offset + b) * heads + h);
  return (global_row * 65536u + static_cast<uint64_t>(query_offset + i)) * 65536u + static_cast<uint64_t>(j);
}

// The definition, in double: per (batch, head, query) the softmax over visible keys of
// scale q.k + table[bucket(key - (query_offset + query)), head]; a uniform row over all keys
// when no key is visible; dropout with the Philox decision of element key
// (((row_offset + b) * heads + h) * 2^16 + query_offset + i) * 2^16 + j, kept values times
// 1 / (1 - p); then times v.
// inputs: q, k, v, and the table when the case has one.
std::vector<double> reference_attention(const AttentionCase& c, const DoubleInputs& inputs) {
  const std::vector<double>& q = inputs[0];
  const std::vector<double>& k = inputs[1];
  const std::vector<double>& v = inputs[2];
  const ops::AttentionOptions& o = c.options;
  const bool dropout = o.training && o.dropout.p > 0.0f;
  const int64_t row = c.heads * c.head_dim;  // elements from one position to the next
  std::vector<double> out(at(c.batch * c.q_len * row), 0.0);
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t h = 0; h < c.heads; ++h) {
      for (int64_t i = 0; i < c.q_len; ++i) {
        std::vector<double> score(at(c.k_len));
        std::vector<bool> visible(at(c.k_len));
        bool any_visible = false;
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < c.k_len; ++j) {
          double dot = 0.0;
          for (int64_t d = 0; d < c.head_dim; ++d) {
            dot += q[at((b * c.q_len + i) * row + h * c.head_dim + d)] * k[at((b * c.k_len + j) * row + h * c.head_dim + d)];
          }
          score[at(j)] = static_cast<double>(o.scale) * dot;
          if (c.with_bias) {
            const int bucket = kernels::t5_relative_position_bucket(static_cast<int>(j - (o.query_offset + i)),
                                                                    o.bidirectional, o.num_buckets, o.max_distance);
            score[at(j)] += inputs[3][at(bucket * c.heads + h)];
          }
          const bool padding = !c.key_mask.empty() && c.key_mask[at(b * c.k_len + j)] == 0;
          const bool future = o.causal && j > o.query_offset + i;
          visible[at(j)] = !padding && !future;
          if (visible[at(j)]) {
            any_visible = true;
            max_score = std::max(max_score, score[at(j)]);
          }
        }
        std::vector<double> prob(at(c.k_len));
        double total = 0.0;
        for (int64_t j = 0; j < c.k_len; ++j) {
          prob[at(j)] = !any_visible ? 1.0 : (visible[at(j)] ? std::exp(score[at(j)] - max_score) : 0.0);
          total += prob[at(j)];
        }
        for (int64_t j = 0; j < c.k_len; ++j) {
          double weight = prob[at(j)] / total;
          if (dropout) {
            const uint64_t key = documented_key(o.dropout.row_offset, c.heads, o.query_offset, b, h, i, j);
            const bool keep = kernels::dropout_keep(o.dropout.p, o.dropout.seed, o.dropout.step, o.dropout.stream, key);
            weight = keep ? weight / (1.0 - static_cast<double>(o.dropout.p)) : 0.0;
          }
          for (int64_t d = 0; d < c.head_dim; ++d) {
            out[at((b * c.q_len + i) * row + h * c.head_dim + d)] += weight * v[at((b * c.k_len + j) * row + h * c.head_dim + d)];
          }
        }
      }
    }
  }
  return out;
}

Tensor mask_tensor(const AttentionCase& c) {
  return c.key_mask.empty() ? Tensor() : Tensor::from_vector<int32_t>({c.batch, c.k_len}, c.key_mask);
}

// Random q, k, v (and table) for a case.
std::vector<Tensor> random_inputs(const AttentionCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Tensor> inputs = {testing::random_tensor(c.q_shape(), rng), testing::random_tensor(c.kv_shape(), rng),
                                testing::random_tensor(c.kv_shape(), rng)};
  if (c.with_bias) inputs.push_back(testing::random_tensor({c.options.num_buckets, c.heads}, rng));
  return inputs;
}

Tensor run_attention(const AttentionCase& c, const std::vector<Tensor>& x) {
  return ops::attention(x[0], x[1], x[2], c.with_bias ? x[3] : Tensor(), mask_tensor(c), c.options);
}

// Forward against the reference and every gradient against finite differences; prints the
// normalised errors so the achieved precision is visible in the test log.
testing::GradCheckReport check_attention(const std::string& name, const AttentionCase& c, uint32_t seed = 7) {
  const std::vector<Tensor> inputs = random_inputs(c, seed);
  const std::vector<bool> differentiable(inputs.size(), true);
  auto op = [&c](const std::vector<Tensor>& x) { return run_attention(c, x); };
  auto reference = [&c](const DoubleInputs& x) { return reference_attention(c, x); };
  const testing::GradCheckReport report = testing::check_op(name, op, reference, inputs, differentiable);
  std::printf("[attention] %-22s forward %.2e  dq %.2e  dk %.2e  dv %.2e", name.c_str(), report.forward_error,
              report.gradient_errors[0], report.gradient_errors[1], report.gradient_errors[2]);
  if (c.with_bias) std::printf("  dtable %.2e", report.gradient_errors[3]);
  std::printf("\n");
  return report;
}

// Small bucket configurations make short test sequences reach the logarithmic and the
// clamped buckets: bidirectional 10/14 has 2 exact buckets per side, causal 10/14 has 5.
ops::AttentionOptions encoder_options(int num_buckets = 10, int max_distance = 14) {
  ops::AttentionOptions o;
  o.bidirectional = true;
  o.num_buckets = num_buckets;
  o.max_distance = max_distance;
  return o;
}

ops::AttentionOptions decoder_options(int64_t query_offset = 0, int num_buckets = 10, int max_distance = 14) {
  ops::AttentionOptions o;
  o.causal = true;
  o.bidirectional = false;
  o.query_offset = query_offset;
  o.num_buckets = num_buckets;
  o.max_distance = max_distance;
  return o;
}

// Element (b, position, h, d) of a [batch, len, heads, head_dim] tensor.
int64_t element(const AttentionCase& c, int64_t len, int64_t b, int64_t position, int64_t h, int64_t d) {
  return ((b * len + position) * c.heads + h) * c.head_dim + d;
}

// ---- forward and backward against the reference ------------------------------------------

TEST(AttentionGradcheck, OddSizesBidirectionalWithReleasedBucketConfig) {
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/true);
  c.options = encoder_options(32, 128);  // MolT5's table
  check_attention("bidirectional 32/128", c);
}

TEST(AttentionGradcheck, OddSizesBidirectionalReachingLogBuckets) {
  // Offsets -6..+8 with 2 exact buckets per side: exact, logarithmic and clamped buckets.
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 7, .k_len = 9, .head_dim = 5}, /*with_bias=*/true);
  c.options = encoder_options();
  check_attention("bidirectional 10/14", c);
}

TEST(AttentionGradcheck, OddSizesWithoutBias) {
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/false);
  check_attention("no bias", c);
}

TEST(AttentionGradcheck, CausalWithBias) {
  // Offsets 0 .. -12 with 5 exact buckets: exact, logarithmic, and from -12 on the clamped
  // last bucket.
  AttentionCase c = make_case({.batch = 2, .heads = 2, .q_len = 13, .k_len = 13, .head_dim = 3}, /*with_bias=*/true);
  c.options = decoder_options();
  check_attention("causal", c);
}

TEST(AttentionGradcheck, CausalWithQueryOffset) {
  // Cached decoding: 3 new queries at absolute positions 5, 6, 7 over 8 keys.
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 3, .k_len = 8, .head_dim = 5}, /*with_bias=*/true);
  c.options = decoder_options(5);
  check_attention("causal offset 5", c);
}

TEST(AttentionGradcheck, BidirectionalWithQueryOffsetShiftsBucketsOnly) {
  AttentionCase c = make_case({.batch = 1, .heads = 2, .q_len = 4, .k_len = 9, .head_dim = 3}, /*with_bias=*/true);
  c.options = encoder_options();
  c.options.query_offset = 3;
  check_attention("bidirectional offset 3", c);
}

TEST(AttentionGradcheck, PaddingMaskLeavesEarlyCausalRowsWithoutVisibleKeys) {
  // Item 0 is left padded: with causality its queries 0 and 1 see no key at all (uniform
  // rows, no score gradient) while the later rows are ordinary. Item 1 is right padded.
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 7, .k_len = 7, .head_dim = 5}, /*with_bias=*/true);
  c.options = decoder_options();
  c.key_mask = {0, 0, 1, 1, 0, 1, 1, /**/ 1, 1, 1, 1, 1, 0, 0};
  check_attention("causal + padding", c);
}

TEST(AttentionGradcheck, PaddingMaskCrossAttention) {
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/false);
  c.key_mask = {1, 1, 1, 1, 1, 0, 0, /**/ 1, 0, 1, 1, 0, 1, 1};
  check_attention("cross + padding", c);
}

TEST(AttentionGradcheck, LengthOneSequences) {
  AttentionCase c = make_case({.batch = 3, .heads = 2, .q_len = 1, .k_len = 1, .head_dim = 4}, /*with_bias=*/true);
  c.options = decoder_options();
  check_attention("length 1", c);
  // One query against a longer cache: the usual incremental-decoding step.
  AttentionCase step = make_case({.batch = 2, .heads = 3, .q_len = 1, .k_len = 6, .head_dim = 5}, /*with_bias=*/true);
  step.options = decoder_options(5);
  check_attention("one query, 6 keys", step);
}

TEST(AttentionGradcheck, ScaleOtherThanOne) {
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/true);
  c.options = encoder_options();
  c.options.scale = 0.37f;
  c.key_mask = {1, 1, 1, 1, 1, 1, 0, /**/ 1, 1, 1, 0, 0, 0, 0};
  check_attention("scale 0.37", c);
}

TEST(AttentionGradcheck, DropoutInTrainingUsesThePhiloxDecisions) {
  // The reference applies kernels::dropout_keep at the documented index of every element.
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/true);
  c.options = encoder_options();
  c.options.training = true;
  c.options.dropout = kernels::DropoutParams{.p = 0.3f, .seed = 1234567, .step = 3, .stream = 17};
  c.key_mask = {1, 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 0, 0};
  check_attention("dropout 0.3", c);
  c.options.dropout.row_offset = 6;
  check_attention("dropout, row_offset 6", c);
}

TEST(AttentionGradcheck, DropoutWithQueryOffsetKeysTheAbsoluteQuery) {
  AttentionCase c = make_case({.batch = 2, .heads = 2, .q_len = 3, .k_len = 8, .head_dim = 4}, /*with_bias=*/true);
  c.options = decoder_options(/*query_offset=*/5);
  c.options.training = true;
  c.options.dropout = kernels::DropoutParams{.p = 0.25f, .seed = 77, .step = 2, .stream = 5, .row_offset = 3};
  check_attention("causal dropout offset", c);
}

// ---- fully padded batch items ---------------------------------------------------------------

TEST(AttentionPadding, FullyPaddedItemAttendsUniformlyAndPassesNoScoreGradient) {
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/true);
  c.options = encoder_options();
  c.key_mask = {1, 1, 0, 1, 1, 1, 0, /**/ 0, 0, 0, 0, 0, 0, 0};
  check_attention("all padding item", c);

  std::vector<Tensor> x = random_inputs(c, 21);
  for (Tensor& t : x) t.set_requires_grad(true);
  std::mt19937 rng(22);
  const Tensor upstream = testing::random_tensor(c.q_shape(), rng);  // [batch, q_len, heads, head_dim]
  Tape tape;
  const Tensor out = run_attention(c, x);
  tape.backward(out, upstream);
  const Tensor &q = x[0], &k = x[1], &v = x[2];
  for (int64_t h = 0; h < c.heads; ++h) {
    for (int64_t d = 0; d < c.head_dim; ++d) {
      double mean_v = 0.0, sum_upstream = 0.0;
      for (int64_t j = 0; j < c.k_len; ++j) mean_v += v.item(element(c, c.k_len, 1, j, h, d)) / static_cast<double>(c.k_len);
      for (int64_t i = 0; i < c.q_len; ++i) sum_upstream += upstream.item(element(c, c.q_len, 1, i, h, d));
      // Uniform over all 7 keys: every query of item 1 outputs the mean of its values...
      for (int64_t i = 0; i < c.q_len; ++i) {
        EXPECT_NEAR(out.item(element(c, c.q_len, 1, i, h, d)), mean_v, 1e-6) << "query " << i << " head " << h;
        // ...and a constant row sends nothing to q.
        EXPECT_EQ(q.grad().item(element(c, c.q_len, 1, i, h, d)), 0.0) << "dq, query " << i << " head " << h;
      }
      for (int64_t j = 0; j < c.k_len; ++j) {
        EXPECT_EQ(k.grad().item(element(c, c.k_len, 1, j, h, d)), 0.0) << "dk, key " << j << " head " << h;
        // v still receives 1/k_len of every query's upstream gradient.
        EXPECT_NEAR(v.grad().item(element(c, c.k_len, 1, j, h, d)), sum_upstream / static_cast<double>(c.k_len), 1e-6)
            << "dv, key " << j << " head " << h;
      }
    }
  }
  // Item 0 is ordinary: its q gradient is not zero.
  double item0_dq = 0.0;
  for (int64_t e = 0; e < c.q_len * c.heads * c.head_dim; ++e) item0_dq += std::abs(q.grad().item(e));
  EXPECT_GT(item0_dq, 1e-3);
}

TEST(AttentionPadding, FullyPaddedBatchGivesTheTableNoGradient) {
  AttentionCase c = make_case({.batch = 1, .heads = 2, .q_len = 4, .k_len = 6, .head_dim = 3}, /*with_bias=*/true);
  c.options = encoder_options();
  c.key_mask.assign(6, 0);
  std::vector<Tensor> x = random_inputs(c, 31);
  for (Tensor& t : x) t.set_requires_grad(true);
  Tape tape;
  const Tensor out = run_attention(c, x);
  std::mt19937 rng(32);
  tape.backward(out, testing::random_tensor(c.q_shape(), rng));
  for (int64_t e = 0; e < x[3].numel(); ++e) EXPECT_EQ(x[3].grad().item(e), 0.0) << "dtable element " << e;
  for (int64_t e = 0; e < x[0].numel(); ++e) EXPECT_EQ(x[0].grad().item(e), 0.0) << "dq element " << e;
}

// ---- decoding consistency ---------------------------------------------------------------

TEST(AttentionDecoding, CachedQueriesMatchTheRowsOfFullCausalAttention) {
  // Causal attention over 9 positions; the last 3 rows computed alone with query_offset 6
  // must be the same rows.
  AttentionCase full = make_case({.batch = 2, .heads = 3, .q_len = 9, .k_len = 9, .head_dim = 5}, /*with_bias=*/true);
  full.options = decoder_options();
  full.key_mask = {1, 1, 1, 1, 1, 1, 1, 1, 1, /**/ 0, 1, 1, 1, 1, 1, 1, 1, 1};
  const std::vector<Tensor> x = random_inputs(full, 41);
  const Tensor full_out = run_attention(full, x);  // [2, 9, 3, 5]
  AttentionCase tail = full;
  tail.q_len = 3;
  tail.options.query_offset = 6;
  const Tensor tail_out = run_attention(tail, {x[0].narrow(1, 6, 3), x[1], x[2], x[3]});  // strided q
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t h = 0; h < 3; ++h) {
        for (int64_t d = 0; d < 5; ++d) {
          EXPECT_NEAR(tail_out.item(element(tail, 3, b, i, h, d)), full_out.item(element(full, 9, b, 6 + i, h, d)), 1e-6);
        }
      }
    }
  }
}

// ---- dropout ------------------------------------------------------------------------------

TEST(AttentionDropout, SameParamsSameOutputOtherStepOrStreamOtherMask) {
  AttentionCase c = make_case({.batch = 2, .heads = 3, .q_len = 5, .k_len = 7, .head_dim = 5}, /*with_bias=*/true);
  c.options = encoder_options();
  c.options.training = true;
  c.options.dropout = kernels::DropoutParams{.p = 0.3f, .seed = 99, .step = 10, .stream = 4};
  const std::vector<Tensor> x = random_inputs(c, 51);
  const std::vector<float> first = run_attention(c, x).to_vector<float>();
  EXPECT_EQ(first, run_attention(c, x).to_vector<float>()) << "same DropoutParams, same output";

  AttentionCase next_step = c;
  next_step.options.dropout.step = 11;
  EXPECT_NE(first, run_attention(next_step, x).to_vector<float>()) << "another step, another mask";
  AttentionCase other_stream = c;
  other_stream.options.dropout.stream = 5;
  EXPECT_NE(first, run_attention(other_stream, x).to_vector<float>()) << "another stream, another mask";

  // Outside training the probabilities are used as they are.
  AttentionCase inference = c;
  inference.options.training = false;
  AttentionCase no_dropout = c;
  no_dropout.options.training = false;
  no_dropout.options.dropout = {};
  EXPECT_EQ(run_attention(inference, x).to_vector<float>(), run_attention(no_dropout, x).to_vector<float>());
}

TEST(AttentionDropout, DropsProbabilityElementsAtTheirGlobalKey) {
  // q = k = 0 and no bias make every probability 1/k_len; with v = identity (head_dim =
  // k_len, v[j] = e_j) the output row i of a head IS its dropped probability row. So every
  // output element must be 0 exactly where dropout_keep(key) says drop, and
  // (1/k_len) / (1 - p) elsewhere, with key = (((row_offset + b) * heads + h) * 2^16 + i) * 2^16 + j.
  const int64_t batch = 2, heads = 3, q_len = 16, k_len = 32;
  const kernels::DropoutParams dropout{
      .p = 0.3f, .seed = 0x0123456789abcdefULL, .step = 77, .stream = 2, .row_offset = 1000};
  std::vector<float> identity(static_cast<size_t>(batch * k_len * heads * k_len), 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < k_len; ++j) {
      for (int64_t h = 0; h < heads; ++h) identity[at(((b * k_len + j) * heads + h) * k_len + j)] = 1.0f;
    }
  }
  ops::AttentionOptions options;
  options.training = true;
  options.dropout = dropout;
  const Tensor q = Tensor::zeros({batch, q_len, heads, k_len});
  const Tensor k = Tensor::zeros({batch, k_len, heads, k_len});
  const Tensor v = Tensor::from_vector<float>({batch, k_len, heads, k_len}, identity);
  const std::vector<float> out = ops::attention(q, k, v, Tensor(), Tensor(), options).to_vector<float>();
  const float kept_value = (1.0f / static_cast<float>(k_len)) / (1.0f - dropout.p);
  int64_t dropped = 0;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < q_len; ++i) {
        for (int64_t j = 0; j < k_len; ++j) {
          const uint64_t key = documented_key(dropout.row_offset, heads, 0, b, h, i, j);
          const bool keep = kernels::dropout_keep(dropout.p, dropout.seed, dropout.step, dropout.stream, key);
          const float value = out[at(((b * q_len + i) * heads + h) * k_len + j)];
          if (keep) {
            EXPECT_FLOAT_EQ(value, kept_value) << "key " << key;
          } else {
            EXPECT_EQ(value, 0.0f) << "key " << key;
            ++dropped;
          }
        }
      }
    }
  }
  // 3072 draws at p = 0.3: the dropped share is 0.3 +- 0.025 (3 standard deviations).
  const double dropped_share = static_cast<double>(dropped) / static_cast<double>(batch * heads * q_len * k_len);
  EXPECT_NEAR(dropped_share, 0.3, 0.025);
}

// What data parallelism and gradient accumulation need: a batch item draws the same mask (forward
// and backward) when its batch is padded to 7 instead of 9 positions and when it is item
// b - 2 of a slice with row_offset 2 instead of item b of the whole batch. With q = k = 0, no
// bias and v = identity (v[j] = e_j) the output row i of a head is its dropped probability row
// exactly (one nonzero product per element), and with dout[i] = e_i, dv[j][i] is the dropped
// probability (i, j) that backward recomputed: both compared bit for bit.
TEST(AttentionDropout, MaskOfAnItemIgnoresPaddingAndWhereTheBatchWasSplit) {
  const int64_t heads = 2, head_dim = 9;
  const std::vector<int64_t> lengths = {9, 4, 6, 7};  // items 2 and 3 fit a batch padded to 7
  const kernels::DropoutParams dropout{.p = 0.35f, .seed = 4242, .step = 8, .stream = 12};
  struct Result {
    std::vector<float> out, dv;  // [batch, len, heads, head_dim]
  };
  auto run = [&](int64_t first_item, int64_t batch, int64_t len, int64_t row_offset) {
    std::vector<float> v(at(batch * len * heads * head_dim), 0.0f), dout(v.size(), 0.0f);
    std::vector<int32_t> key_mask(at(batch * len), 0);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t position = 0; position < len; ++position) {
        key_mask[at(b * len + position)] = position < lengths[at(first_item + b)] ? 1 : 0;
        for (int64_t h = 0; h < heads; ++h) {
          v[at(((b * len + position) * heads + h) * head_dim + position)] = 1.0f;     // v[j] = e_j
          dout[at(((b * len + position) * heads + h) * head_dim + position)] = 1.0f;  // dout[i] = e_i
        }
      }
    }
    ops::AttentionOptions options;
    options.training = true;
    options.dropout = dropout;
    options.dropout.row_offset = row_offset;
    const Shape shape = {batch, len, heads, head_dim};
    const Tensor v_tensor = Tensor::from_vector<float>(shape, v);
    v_tensor.set_requires_grad(true);
    Tape tape;
    const Tensor out = ops::attention(Tensor::zeros(shape), Tensor::zeros(shape), v_tensor, Tensor(),
                                      Tensor::from_vector<int32_t>({batch, len}, key_mask), options);
    tape.backward(out, Tensor::from_vector<float>(shape, dout));
    return Result{out.to_vector<float>(), v_tensor.grad().to_vector<float>()};
  };
  const Result whole = run(0, 4, 9, 0);
  const Result slice = run(2, 2, 7, 2);
  const Result unshifted = run(2, 2, 7, 0);  // the slice keyed as items 0, 1: must differ
  int64_t dropped = 0, unshifted_differs = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < 7; ++i) {
        for (int64_t j = 0; j < 7; ++j) {
          const size_t in_whole_out = at((((2 + b) * 9 + i) * heads + h) * head_dim + j);
          const size_t in_slice_out = at(((b * 7 + i) * heads + h) * head_dim + j);
          ASSERT_EQ(slice.out[in_slice_out], whole.out[in_whole_out]) << "item " << 2 + b << " head " << h << " query " << i
                                                                      << " key " << j;
          // dv[b, j, h, i] = dropped P[i, j].
          const size_t in_whole_dv = at((((2 + b) * 9 + j) * heads + h) * head_dim + i);
          const size_t in_slice_dv = at(((b * 7 + j) * heads + h) * head_dim + i);
          ASSERT_EQ(slice.dv[in_slice_dv], whole.dv[in_whole_dv]) << "item " << 2 + b << " head " << h << " query " << i
                                                                  << " key " << j;
          ASSERT_EQ(whole.dv[in_whole_dv], whole.out[in_whole_out]);  // backward redrew the forward's mask
          if (j < lengths[at(2 + b)]) {
            dropped += whole.out[in_whole_out] == 0.0f;
            unshifted_differs += (unshifted.out[in_slice_out] == 0.0f) != (whole.out[in_whole_out] == 0.0f);
          }
        }
      }
    }
  }
  EXPECT_GT(dropped, 20);  // 182 visible probabilities at p = 0.35
  EXPECT_GT(unshifted_differs, 20);
}

// A cached decoding step keys its query by the absolute position query_offset + i, so it draws
// the mask of that row of full causal attention.
TEST(AttentionDropout, CachedQueriesDrawTheRowsOfFullCausalAttention) {
  AttentionCase full = make_case({.batch = 2, .heads = 3, .q_len = 9, .k_len = 9, .head_dim = 5}, /*with_bias=*/true);
  full.options = decoder_options();
  full.options.training = true;
  full.options.dropout = kernels::DropoutParams{.p = 0.3f, .seed = 5, .step = 6, .stream = 7, .row_offset = 4};
  const std::vector<Tensor> x = random_inputs(full, 43);
  const Tensor full_out = run_attention(full, x);  // [2, 9, 3, 5]
  AttentionCase tail = full;
  tail.q_len = 3;
  tail.options.query_offset = 6;
  const Tensor tail_out = run_attention(tail, {x[0].narrow(1, 6, 3), x[1], x[2], x[3]});
  AttentionCase no_dropout = tail;
  no_dropout.options.training = false;
  const Tensor undropped = run_attention(no_dropout, {x[0].narrow(1, 6, 3), x[1], x[2], x[3]});
  double dropout_effect = 0.0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t h = 0; h < 3; ++h) {
        for (int64_t d = 0; d < 5; ++d) {
          const double value = tail_out.item(element(tail, 3, b, i, h, d));
          EXPECT_NEAR(value, full_out.item(element(full, 9, b, 6 + i, h, d)), 1e-6);
          dropout_effect += std::abs(value - undropped.item(element(tail, 3, b, i, h, d)));
        }
      }
    }
  }
  EXPECT_GT(dropout_effect, 0.1);  // the mask did drop something
}

// ---- key mask dtypes -----------------------------------------------------------------------

TEST(AttentionMask, I64AndF32MasksMeanNonzeroAttends) {
  AttentionCase c = make_case({.batch = 2, .heads = 2, .q_len = 3, .k_len = 5, .head_dim = 4}, /*with_bias=*/true);
  c.options = encoder_options();
  c.key_mask = {1, 1, 0, 1, 0, /**/ 1, 0, 0, 1, 1};
  const std::vector<Tensor> x = random_inputs(c, 61);
  const std::vector<float> expected = run_attention(c, x).to_vector<float>();
  // Any nonzero value attends: 2^33 in i64 and 0.5 in f32 must not be truncated to 0.
  const Tensor mask_i64 = Tensor::from_vector<int64_t>({2, 5}, {1, int64_t{1} << 33, 0, -3, 0, /**/ 7, 0, 0, 1, 1});
  const Tensor mask_f32 = Tensor::from_vector<float>({2, 5}, {1.0f, 0.5f, 0.0f, -2.0f, 0.0f, /**/ 1.0f, 0.0f, 0.0f, 0.25f, 1.0f});
  EXPECT_EQ(ops::attention(x[0], x[1], x[2], x[3], mask_i64, c.options).to_vector<float>(), expected);
  EXPECT_EQ(ops::attention(x[0], x[1], x[2], x[3], mask_f32, c.options).to_vector<float>(), expected);
  // And the mask matters: without it the output differs.
  EXPECT_NE(ops::attention(x[0], x[1], x[2], x[3], Tensor(), c.options).to_vector<float>(), expected);
}

// ---- the backend contract ----------------------------------------------------------------

TEST(AttentionBackend, OverwritesActivationGradientsAccumulatesTableGradientSavesPreDropoutProbs) {
  kernels::AttentionParams p;
  p.batch = 2;
  p.heads = 3;
  p.q_len = 4;
  p.k_len = 5;
  p.head_dim = 3;
  p.has_bias = true;
  p.bidirectional = true;
  p.num_buckets = 10;
  p.max_distance = 14;
  p.has_key_mask = true;
  p.dropout = kernels::DropoutParams{.p = 0.3f, .seed = 5, .step = 6, .stream = 7};
  std::mt19937 rng(71);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto random_values = [&](int64_t count) {
    std::vector<float> values(static_cast<size_t>(count));
    for (float& value : values) value = uniform(rng);
    return values;
  };
  const int64_t q_count = p.batch * p.q_len * p.heads * p.head_dim, kv_count = p.batch * p.k_len * p.heads * p.head_dim;
  const std::vector<float> q = random_values(q_count), k = random_values(kv_count), v = random_values(kv_count);
  const std::vector<float> table = random_values(p.num_buckets * p.heads), dout = random_values(q_count);
  const std::vector<int32_t> key_mask = {1, 1, 1, 0, 1, /**/ 0, 0, 0, 0, 0};
  std::vector<float> out(static_cast<size_t>(q_count));
  Backend& backend = backend_for(Device::cpu());
  // The CPU backend's saved state is the probabilities, [batch, heads, q, k].
  ASSERT_EQ(backend.attention_saved_elements(p), p.batch * p.heads * p.q_len * p.k_len);
  std::vector<float> probs(static_cast<size_t>(backend.attention_saved_elements(p)));
  backend.attention_forward(p, DType::kF32, q.data(), k.data(), v.data(), table.data(), key_mask.data(), out.data(), probs.data());

  // probs are the softmax itself, before dropout: rows sum to 1, padding keys are 0, and a
  // fully padded item is uniform.
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        double row_sum = 0.0;
        for (int64_t j = 0; j < p.k_len; ++j) {
          const float prob = probs[at(((b * p.heads + h) * p.q_len + i) * p.k_len + j)];
          row_sum += prob;
          if (b == 0 && key_mask[at(j)] == 0) {
            EXPECT_EQ(prob, 0.0f);
          }
          if (b == 1) {
            EXPECT_FLOAT_EQ(prob, 0.2f);
          }
        }
        EXPECT_NEAR(row_sum, 1.0, 1e-6);
      }
    }
  }

  auto backward = [&](std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv, std::vector<float>& dtable) {
    backend.attention_backward(p, DType::kF32, dout.data(), q.data(), k.data(), v.data(), out.data(), nullptr, key_mask.data(), probs.data(), dq.data(),
                               dk.data(), dv.data(), dtable.data());
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> dq(static_cast<size_t>(q_count), 0.0f), dk(static_cast<size_t>(kv_count), 0.0f),
      dv(static_cast<size_t>(kv_count), 0.0f), dtable(table.size(), 0.0f);
  backward(dq, dk, dv, dtable);
  // Garbage in the activation gradients is overwritten; the table gradient accumulates.
  std::vector<float> dq2(dq.size(), nan), dk2(dk.size(), nan), dv2(dv.size(), nan), dtable2(dtable.size(), 0.5f);
  backward(dq2, dk2, dv2, dtable2);
  backward(dq2, dk2, dv2, dtable2);
  EXPECT_EQ(dq2, dq);
  EXPECT_EQ(dk2, dk);
  EXPECT_EQ(dv2, dv);
  double table_gradient_norm = 0.0;
  for (size_t e = 0; e < dtable.size(); ++e) {
    EXPECT_NEAR(dtable2[e], 0.5f + 2.0f * dtable[e], 1e-5f) << "dtable element " << e;
    table_gradient_norm += std::abs(dtable[e]);
  }
  EXPECT_GT(table_gradient_norm, 1e-3);  // not passing by being zero
}

// ---- bad input -----------------------------------------------------------------------------

std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const EngineError& error) {
    return error.what();
  }
  return "no EngineError";
}

// bf16 activations are a CUDA-device feature: the CPU backend refuses them by op name rather
// than reading bf16 bits as floats (the op layer accepts them; tests/simt runs them on cuda-emu).
TEST(AttentionBackend, CpuRefusesBf16ActivationsNamingTheOp) {
  const Tensor q = Tensor::zeros({1, 2, 1, 4}).to(DType::kBF16);
  EXPECT_THAT(error_of([&] { ops::attention(q, q, q, Tensor(), Tensor()); }),
              HasSubstr("attention_forward: the cpu backend computes activations in f32, got bf16"));
  kernels::AttentionParams p;
  p.batch = 1;
  p.q_len = 2;
  p.k_len = 2;
  p.heads = 1;
  p.head_dim = 4;
  Backend& cpu = backend_for(Device::cpu());
  std::vector<uint16_t> bits(8, 0);
  std::vector<float> probs(static_cast<size_t>(cpu.attention_saved_elements(p)), 0.0f);
  EXPECT_THAT(error_of([&] {
                cpu.attention_backward(p, DType::kBF16, bits.data(), bits.data(), bits.data(), bits.data(), bits.data(),
                                       nullptr, nullptr, probs.data(), bits.data(), bits.data(), bits.data(), nullptr);
              }),
              HasSubstr("attention_backward: the cpu backend computes activations in f32, got bf16"));
}


TEST(AttentionErrors, MessagesNameTheOpAndTheShapes) {
  const Tensor q = Tensor::zeros({2, 3, 4, 5});  // [batch, q_len, heads, head_dim]
  const Tensor k = Tensor::zeros({2, 6, 4, 5});  // [batch, k_len, heads, head_dim]
  const Tensor none;
  // q / k head_dim mismatch.
  EXPECT_THAT(error_of([&] { ops::attention(q, Tensor::zeros({2, 6, 4, 7}), Tensor::zeros({2, 6, 4, 7}), none, none); }),
              HasSubstr("attention: q f32[2, 3, 4, 5] on cpu and k f32[2, 6, 4, 7] on cpu must agree on batch, heads "
                        "and head_dim (both are [batch, len, heads, head_dim]); head_dim differs: 5 vs 7"));
  // q / k heads and batch mismatch.
  EXPECT_THAT(error_of([&] { ops::attention(q, Tensor::zeros({2, 6, 3, 5}), Tensor::zeros({2, 6, 3, 5}), none, none); }),
              HasSubstr("heads differs: 4 vs 3"));
  EXPECT_THAT(error_of([&] { ops::attention(q, Tensor::zeros({1, 6, 4, 5}), Tensor::zeros({1, 6, 4, 5}), none, none); }),
              HasSubstr("batch differs: 2 vs 1"));
  // k vs v.
  EXPECT_THAT(error_of([&] { ops::attention(q, k, Tensor::zeros({2, 5, 4, 5}), none, none); }),
              HasSubstr("attention: shape mismatch: k is f32[2, 6, 4, 5] on cpu but v is f32[2, 5, 4, 5] on cpu"));
  // Bias table not [num_buckets, heads].
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, Tensor::zeros({32, 3}), none); }),
              HasSubstr("attention: bias_table f32[32, 3] on cpu must be [num_buckets, heads] = [32, 4] for q "
                        "f32[2, 3, 4, 5] on cpu"));
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, Tensor::zeros({4, 32}), none); }),
              HasSubstr("bias_table f32[4, 32] on cpu must be [num_buckets, heads] = [32, 4]"));
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, Tensor::zeros({32, 4}, DType::kI32), none); }),
              HasSubstr("attention: bias_table must be f32, got i32[32, 4] on cpu"));
  // Key mask not [batch, k_len], or of a dtype it does not read.
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, Tensor::zeros({2, 5}, DType::kI32)); }),
              HasSubstr("attention: key_mask i32[2, 5] on cpu must be [batch, k_len] = [2, 6] for k f32[2, 6, 4, 5] on cpu"));
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, Tensor::zeros({2, 6}, DType::kBF16)); }),
              HasSubstr("attention: key_mask must be i32, i64 or f32 (nonzero = attend), got bf16[2, 6] on cpu"));
  // Wrong dtypes and ranks.
  EXPECT_THAT(error_of([&] { ops::attention(q.to(DType::kBF16), k, k, none, none); }),
              HasSubstr("attention: q bf16[2, 3, 4, 5] on cpu and k f32[2, 6, 4, 5] on cpu must have the same element "
                        "type"));
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k.to(DType::kI32), none, none); }),
              HasSubstr("attention: v must be f32 or bf16, got i32[2, 6, 4, 5] on cpu"));
  EXPECT_THAT(error_of([&] { ops::attention(Tensor::zeros({2, 3, 20}), k, k, none, none); }),
              HasSubstr("attention: q must have 4 dimensions, got f32[2, 3, 20] on cpu"));
  EXPECT_THAT(error_of([&] { ops::attention(none, k, k, none, none); }), HasSubstr("attention: q is undefined"));
  // Options.
  ops::AttentionOptions options;
  options.query_offset = -1;
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, none, options); }),
              HasSubstr("attention: query_offset must be >= 0, got -1 (q f32[2, 3, 4, 5] on cpu, k f32[2, 6, 4, 5] on cpu)"));
  for (float bad_p : {1.0f, -0.1f, std::numeric_limits<float>::quiet_NaN()}) {
    ops::AttentionOptions dropout_options;
    dropout_options.training = true;
    dropout_options.dropout.p = bad_p;
    EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, none, dropout_options); }),
                HasSubstr("attention: dropout probability must be in [0, 1)"))
        << "p = " << bad_p;
  }
  // Dropout keys that would not fit their 16-bit fields, or global rows beyond 2^32.
  ops::AttentionOptions dropping;
  dropping.training = true;
  dropping.dropout.p = 0.1f;
  const Tensor long_k = Tensor::zeros({1, 65537, 1, 1});
  EXPECT_THAT(error_of([&] { ops::attention(Tensor::zeros({1, 1, 1, 1}), long_k, long_k, none, none, dropping); }),
              HasSubstr("attention: dropout keys need query_offset + q_len < 65536 and k_len <= 65536; got query_offset "
                        "0, q f32[1, 1, 1, 1] on cpu, k f32[1, 65537, 1, 1] on cpu"));
  ops::AttentionOptions late_query = dropping;
  late_query.query_offset = 65533;
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, none, late_query); }),
              HasSubstr("got query_offset 65533, q f32[2, 3, 4, 5] on cpu"));
  ops::AttentionOptions negative_row = dropping;
  negative_row.dropout.row_offset = -2;
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, none, negative_row); }),
              HasSubstr("attention: dropout row_offset -2 with q f32[2, 3, 4, 5] on cpu must keep (row_offset + batch) * "
                        "heads <= 4294967296"));
  negative_row.dropout.row_offset = (int64_t{1} << 30) - 1;  // (2^30 + 1) * 4 heads > 2^32
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, none, none, negative_row); }), HasSubstr("row_offset 1073741823"));
  negative_row.dropout.row_offset = (int64_t{1} << 30) - 2;  // exactly 2^32: fits
  EXPECT_NO_THROW(ops::attention(q, k, k, none, none, negative_row));
  negative_row.training = false;  // no mask drawn: nothing keyed, nothing checked
  EXPECT_NO_THROW(ops::attention(Tensor::zeros({1, 1, 1, 1}), long_k, long_k, none, none, negative_row));
  // A bucket configuration transformers cannot evaluate (no exact bucket), or one whose
  // logarithmic term would produce negative buckets.
  ops::AttentionOptions tiny_table;
  tiny_table.num_buckets = 2;
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, Tensor::zeros({2, 4}), none, tiny_table); }),
              HasSubstr("attention: unusable relative-position buckets: num_buckets 2 (bidirectional)"));
  ops::AttentionOptions short_distance = decoder_options(0, 32, 10);
  EXPECT_THAT(error_of([&] { ops::attention(q, k, k, Tensor::zeros({32, 4}), none, short_distance); }),
              HasSubstr("max_distance 10 must exceed that"));
}

}  // namespace
}  // namespace la3
