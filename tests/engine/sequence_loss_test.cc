// The k+1-caption losses (docs/ARCHITECTURE.md) against a direct double-precision implementation
// from the logits, finite differences through token_log_probs, and k = 0 reducing exactly
// to plain token cross-entropy; the caller-given normaliser (data parallelism, gradient
// accumulation): the batch's own is the default bit for bit, and slices of a batch divided by
// the whole batch's normaliser add up to the whole batch's loss and gradient.
#include "engine/ops/sequence_loss.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <random>
#include <string>

#include "engine/autograd/tape.h"
#include "engine/ops/cross_entropy.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
using testing::DoubleInputs;

constexpr int64_t kVocab = 6;

// log p(label) of row r, position t, straight from the logits in double.
double log_prob(const std::vector<double>& logits, int64_t length, int64_t r, int64_t t, int64_t label) {
  const size_t base = static_cast<size_t>((r * length + t) * kVocab);
  double max_value = -INFINITY, sum = 0.0;
  for (int64_t v = 0; v < kVocab; ++v) max_value = std::max(max_value, logits[base + static_cast<size_t>(v)]);
  for (int64_t v = 0; v < kVocab; ++v) sum += std::exp(logits[base + static_cast<size_t>(v)] - max_value);
  return logits[base + static_cast<size_t>(label)] - max_value - std::log(sum);
}

// The formulas of docs/ARCHITECTURE.md, written independently of sequence_loss.cc.
double reference_loss(ops::CaptionLoss mode, const std::vector<double>& logits, const std::vector<int64_t>& labels,
                      const std::vector<int64_t>& group, int64_t rows, int64_t length) {
  int64_t groups = 0;
  for (int64_t g : group) groups = std::max(groups, g + 1);
  double loss = 0.0, tokens = 0.0;
  for (int64_t g = 0; g < groups; ++g) {
    std::vector<int64_t> members;
    for (int64_t r = 0; r < rows; ++r) {
      if (group[static_cast<size_t>(r)] == g) members.push_back(r);
    }
    const double k1 = static_cast<double>(members.size());
    if (mode == ops::CaptionLoss::kMean) {
      for (int64_t r : members) {
        for (int64_t t = 0; t < length; ++t) {
          const int64_t y = labels[static_cast<size_t>(r * length + t)];
          if (y == -100) continue;
          loss -= log_prob(logits, length, r, t, y);
          tokens += 1;
        }
      }
    } else if (mode == ops::CaptionLoss::kTokenMixture) {
      for (int64_t t = 0; t < length; ++t) {
        const int64_t y = labels[static_cast<size_t>(members[0] * length + t)];
        if (y == -100) continue;
        double p = 0.0;
        for (int64_t r : members) p += std::exp(log_prob(logits, length, r, t, y)) / k1;
        loss -= std::log(p);
        tokens += 1;
      }
    } else {
      double mixture = 0.0, length_sum = 0.0;
      for (int64_t r : members) {
        double s = 0.0;
        for (int64_t t = 0; t < length; ++t) {
          const int64_t y = labels[static_cast<size_t>(r * length + t)];
          if (y == -100) continue;
          s += log_prob(logits, length, r, t, y);
          length_sum += 1;
        }
        mixture += std::exp(s) / k1;
      }
      loss -= std::log(mixture);
      tokens += length_sum / k1;
    }
  }
  return loss / tokens;
}

void check_mode(ops::CaptionLoss mode, const std::vector<int64_t>& labels, const std::vector<int64_t>& group,
                int64_t rows, int64_t length) {
  std::mt19937 rng(51);
  const Tensor label_tensor = Tensor::from_vector<int64_t>({rows, length}, labels);
  testing::check_op(
      ops::caption_loss_name(mode),
      [&](const std::vector<Tensor>& x) {
        return ops::caption_loss(ops::token_log_probs(x[0], label_tensor), label_tensor, group, mode);
      },
      [&](const DoubleInputs& x) { return std::vector<double>{reference_loss(mode, x[0], labels, group, rows, length)}; },
      {testing::random_tensor({rows, length, kVocab}, rng, -2.0f, 2.0f)}, {true});
}

TEST(CaptionLoss, MeanModeTreatsEveryRowAsAnExample) {
  check_mode(ops::CaptionLoss::kMean, {1, 2, 3, -100, 4, 5, -100, -100, 0, 1, 2, 3}, {0, 0, 1}, 3, 4);
}

TEST(CaptionLoss, TokenMixtureSharesOneTargetPerGroup) {
  // Group 0: three captions (k = 2) of one molecule -> identical SMILES labels; group 1: k = 1.
  const std::vector<int64_t> labels = {1, 4, 2, -100, /**/ 1, 4, 2, -100, /**/ 3, 3, 0, 5, /**/ 1, 4, 2, -100,
                                       /**/ 3, 3, 0, 5};
  check_mode(ops::CaptionLoss::kTokenMixture, labels, {0, 0, 1, 0, 1}, 5, 4);
}

TEST(CaptionLoss, SequenceMixtureOverTargetsOfDifferentLengths) {
  const std::vector<int64_t> labels = {1, 4, 2, -100, -100, /**/ 5, 2, 2, 3, 1, /**/ 0, 1, -100, -100, -100,
                                       /**/ 3, 3, 4, 1, -100};
  check_mode(ops::CaptionLoss::kSequenceMixture, labels, {0, 0, 0, 1}, 4, 5);
}

TEST(CaptionLoss, KZeroReducesExactlyToCrossEntropyInEveryMode) {
  std::mt19937 rng(52);
  const Tensor logits = testing::random_tensor({3, 4, kVocab}, rng, -2.0f, 2.0f);
  const Tensor labels = Tensor::from_vector<int64_t>({3, 4}, {1, 2, 3, -100, 4, 5, -100, -100, 0, 1, 2, 3});
  const double plain = ops::cross_entropy(logits, labels).item();
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    const double loss = ops::caption_loss(ops::token_log_probs(logits, labels), labels, {0, 1, 2}, mode).item();
    EXPECT_NEAR(loss, plain, 2e-6 * plain) << ops::caption_loss_name(mode);
  }
}

TEST(CaptionLoss, TokenLogProbsMatchesLogSoftmax) {
  std::mt19937 rng(53);
  const std::vector<int64_t> labels = {2, -100, 5, 0};
  const Tensor label_tensor = Tensor::from_vector<int64_t>({2, 2}, labels);
  testing::check_op(
      "token_log_probs", [&](const std::vector<Tensor>& x) { return ops::token_log_probs(x[0], label_tensor); },
      [&](const DoubleInputs& x) {
        std::vector<double> out;
        for (int64_t i = 0; i < 4; ++i) {
          out.push_back(labels[static_cast<size_t>(i)] == -100 ? 0.0 : log_prob(x[0], 2, i / 2, i % 2, labels[static_cast<size_t>(i)]));
        }
        return out;
      },
      {testing::random_tensor({2, 2, kVocab}, rng)}, {true});
}

TEST(CaptionLoss, BadInputsAreNamed) {
  const Tensor lp = Tensor::zeros({2, 3});
  const Tensor labels = Tensor::from_vector<int64_t>({2, 3}, {1, 2, 3, 1, 2, 4});
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const EngineError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message([&] { ops::caption_loss(lp, labels, {0, 0}, ops::CaptionLoss::kTokenMixture); }),
              HasSubstr("token_mixture needs one target per group, but rows 0 and 1 of group 0 differ at position 2"));
  EXPECT_THAT(message([&] { ops::caption_loss(lp, labels, {0}, ops::CaptionLoss::kMean); }),
              HasSubstr("1 group ids for 2 rows"));
  EXPECT_THAT(message([&] { ops::caption_loss(lp, labels, {0, 2}, ops::CaptionLoss::kMean); }),
              HasSubstr("group 1 has no rows"));
  EXPECT_THAT(message([&] { ops::token_log_probs(Tensor::zeros({2, 3, 4}), labels); }),
              HasSubstr("label 4 at position 5"));
  EXPECT_FALSE(ops::parse_caption_loss("average").ok());
  EXPECT_EQ(*ops::parse_caption_loss("sequence_mixture"), ops::CaptionLoss::kSequenceMixture);
}

// --- caption_loss_from_logits: the fused op (CPU reference backend) --------------------------

// A random batch: groups of 1..4 rows (k = 0..3) in shuffled (non-adjacent) order, targets with
// padded tails, some rows entirely padding. token_mixture rows share their group's target.
struct RandomBatch {
  int64_t rows = 0, length = 0;
  std::vector<int64_t> group, labels;
};

RandomBatch random_batch(std::mt19937& rng, ops::CaptionLoss mode, int64_t groups, int64_t length, int64_t vocab) {
  RandomBatch batch;
  batch.length = length;
  std::uniform_int_distribution<int64_t> group_size(1, 4), token(0, vocab - 1), cut(0, length);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t j = group_size(rng); j > 0; --j) batch.group.push_back(g);
  }
  std::shuffle(batch.group.begin(), batch.group.end(), rng);
  batch.rows = static_cast<int64_t>(batch.group.size());
  std::vector<std::vector<int64_t>> targets(static_cast<size_t>(groups));
  for (int64_t r = 0; r < batch.rows; ++r) {
    std::vector<int64_t>& shared = targets[static_cast<size_t>(batch.group[static_cast<size_t>(r)])];
    const bool reuse = mode == ops::CaptionLoss::kTokenMixture && !shared.empty();
    std::vector<int64_t> target = reuse ? shared : std::vector<int64_t>(static_cast<size_t>(length), -100);
    if (!reuse) {
      const int64_t counted = cut(rng);  // 0 = an all-padding row
      for (int64_t t = 0; t < counted; ++t) target[static_cast<size_t>(t)] = token(rng);
      shared = target;
    }
    batch.labels.insert(batch.labels.end(), target.begin(), target.end());
  }
  return batch;
}

Tensor group_tensor(const std::vector<int64_t>& group) {
  return Tensor::from_vector<int64_t>({static_cast<int64_t>(group.size())}, group);
}

// Forward against the double formulas from the logits, backward against finite differences
// (check_op's default normalised-error bounds: 1e-10 forward, 1e-8 backward; the op is f32
// with double sums, the finite differences in double), for the three modes and random
// batches with k = 0..3, lengths 1..4 and all-padding rows.
TEST(CaptionLossFromLogits, MatchesTheDoubleFormulasAndFiniteDifferences) {
  std::mt19937 rng(61);
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    for (int64_t length : {1, 3, 4}) {
      const RandomBatch b = random_batch(rng, mode, 3, length, kVocab);
      SCOPED_TRACE(::testing::Message() << ops::caption_loss_name(mode) << " rows " << b.rows << " length " << length);
      const Tensor labels = Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels);
      double tokens = 0.0;
      for (int64_t y : b.labels) tokens += y != -100 ? 1.0 : 0.0;
      if (tokens == 0.0) continue;  // the reference divides by the token count
      testing::check_op(
          std::string("caption_loss_from_logits ") + ops::caption_loss_name(mode),
          [&](const std::vector<Tensor>& x) {
            return ops::caption_loss_from_logits(x[0], labels, group_tensor(b.group), mode);
          },
          [&](const DoubleInputs& x) {
            return std::vector<double>{reference_loss(mode, x[0], b.labels, b.group, b.rows, b.length)};
          },
          {testing::random_tensor({b.rows, b.length, kVocab}, rng, -2.0f, 2.0f)}, {true});
    }
  }
}

// The fused op equals the two-step path (token_log_probs + caption_loss): loss and gradient.
TEST(CaptionLossFromLogits, EqualsTokenLogProbsThenCaptionLoss) {
  std::mt19937 rng(62);
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    const RandomBatch b = random_batch(rng, mode, 4, 5, 37);
    const Tensor labels = Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels);
    const Tensor logits = testing::random_tensor({b.rows, b.length, 37}, rng, -3.0f, 3.0f);
    const Tensor fused_logits = logits.clone(), split_logits = logits.clone();
    fused_logits.set_requires_grad(true);
    split_logits.set_requires_grad(true);
    Tensor fused, split;
    {
      Tape tape;
      fused = ops::caption_loss_from_logits(fused_logits, labels, group_tensor(b.group), mode);
      tape.backward(fused, Tensor::full({}, 0.75));
    }
    {
      Tape tape;
      split = ops::caption_loss(ops::token_log_probs(split_logits, labels), labels, b.group, mode);
      tape.backward(split, Tensor::full({}, 0.75));
    }
    EXPECT_NEAR(fused.item(), split.item(), 1e-6 * std::abs(split.item())) << ops::caption_loss_name(mode);
    EXPECT_LT(testing::normalized_error(fused_logits.grad(), split_logits.grad()), 1e-12) << ops::caption_loss_name(mode);
    // Without a tape (mode mean then takes the unfused path) the value is the same.
    EXPECT_NEAR(ops::caption_loss_from_logits(logits, labels, group_tensor(b.group), mode).item(), fused.item(),
                1e-6 * std::abs(fused.item()));
  }
}

TEST(CaptionLossFromLogits, KZeroIsCrossEntropyAndAllPaddingIsZero) {
  std::mt19937 rng(63);
  const Tensor logits = testing::random_tensor({3, 4, kVocab}, rng, -2.0f, 2.0f);
  const Tensor labels = Tensor::from_vector<int64_t>({3, 4}, {1, 2, 3, -100, 4, 5, -100, -100, 0, 1, 2, 3});
  const double plain = ops::cross_entropy(logits, labels).item();
  const Tensor padding = Tensor::full({3, 4}, -100.0, DType::kI64);
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    const Tensor group = Tensor::from_vector<int32_t>({3}, {2, 0, 1});  // i32 ids work too
    EXPECT_NEAR(ops::caption_loss_from_logits(logits, labels, group, mode).item(), plain, 2e-6 * plain)
        << ops::caption_loss_name(mode);
    // Nothing counted: loss 0 and gradient 0 (as cross_entropy).
    const Tensor x = logits.clone();
    x.set_requires_grad(true);
    Tape tape;
    const Tensor loss = ops::caption_loss_from_logits(x, padding, Tensor::from_vector<int64_t>({3}, {0, 0, 1}), mode);
    tape.backward(loss);
    EXPECT_EQ(loss.item(), 0.0) << ops::caption_loss_name(mode);
    for (float g : x.grad().to_vector<float>()) ASSERT_EQ(g, 0.0f) << ops::caption_loss_name(mode);
  }
}

// --- the caller-given normaliser ------------------------------------------------------------

// The normaliser by hand: mean counts every row's tokens, token_mixture the shared target once
// per group, sequence_mixture the mean over the group's rows.
TEST(CaptionLossNormaliser, CountsTargetTokensOncePerGroup) {
  // Group 0: rows 0, 2 (targets of 3 and 2 tokens; identical for token_mixture below); group 1:
  // row 1 (4 tokens); group 2: rows 3, 4, 5 (1, 0 and 2 tokens).
  const Tensor labels = Tensor::from_vector<int64_t>(
      {6, 4}, {1, 2, 3, -100, /**/ 4, 4, 4, 4, /**/ 1, 2, -100, -100, /**/ 5, -100, -100, -100,
               /**/ -100, -100, -100, -100, /**/ 0, 1, -100, -100});
  const std::vector<int64_t> group = {0, 1, 0, 2, 2, 2};
  EXPECT_EQ(ops::caption_loss_normaliser(labels, group, ops::CaptionLoss::kMean), 12.0);
  EXPECT_EQ(ops::caption_loss_normaliser(labels, group, ops::CaptionLoss::kSequenceMixture),
            (3.0 + 2.0) / 2.0 + 4.0 + (1.0 + 0.0 + 2.0) / 3.0);
  const Tensor shared = Tensor::from_vector<int64_t>(
      {4, 3}, {1, 2, -100, /**/ 7, 7, 7, /**/ 1, 2, -100, /**/ 1, 2, -100});
  EXPECT_EQ(ops::caption_loss_normaliser(shared, {0, 1, 0, 0}, ops::CaptionLoss::kTokenMixture), 2.0 + 3.0);
  // i32 labels and another ignore_index; no counted token gives 0.
  EXPECT_EQ(ops::caption_loss_normaliser(Tensor::from_vector<int32_t>({2, 2}, {3, -1, -1, -1}), {0, 1},
                                         ops::CaptionLoss::kMean, -1),
            1.0);
  EXPECT_EQ(ops::caption_loss_normaliser(Tensor::full({2, 3}, -100.0, DType::kI64), {0, 0}, ops::CaptionLoss::kMean),
            0.0);
}

struct LossAndGradient {
  float loss = 0.0f;
  std::vector<float> grad;
  float loss_without_tape = 0.0f;
};

// Loss and gradient (upstream `upstream`) of caption_loss_from_logits, and the loss again
// without a tape (mode mean then takes the unfused path).
LossAndGradient loss_and_gradient(const Tensor& logits, const Tensor& labels, const std::vector<int64_t>& group,
                                  ops::CaptionLoss mode, double normaliser, double upstream = 1.0) {
  LossAndGradient result;
  const Tensor x = logits.clone();
  x.set_requires_grad(true);
  {
    Tape tape;
    const Tensor loss = ops::caption_loss_from_logits(x, labels, group_tensor(group), mode, -100, normaliser);
    tape.backward(loss, Tensor::full({}, upstream));
    result.loss = static_cast<float>(loss.item());
  }
  result.grad = x.grad().to_vector<float>();
  result.loss_without_tape =
      static_cast<float>(ops::caption_loss_from_logits(logits, labels, group_tensor(group), mode, -100, normaliser).item());
  return result;
}

TEST(CaptionLossFromLogits, TheBatchsOwnNormaliserIsBitIdenticalToTheDefault) {
  std::mt19937 rng(64);
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    for (double upstream : {1.0, 0.75}) {
      const RandomBatch b = random_batch(rng, mode, 7, 5, 23);
      SCOPED_TRACE(::testing::Message() << ops::caption_loss_name(mode) << " rows " << b.rows << " upstream " << upstream);
      const Tensor labels = Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels);
      const Tensor logits = testing::random_tensor({b.rows, b.length, 23}, rng, -3.0f, 3.0f);
      const double own = ops::caption_loss_normaliser(labels, b.group, mode);
      ASSERT_GT(own, 0.0);
      const LossAndGradient by_default = loss_and_gradient(logits, labels, b.group, mode, 0.0, upstream);
      const LossAndGradient given = loss_and_gradient(logits, labels, b.group, mode, own, upstream);
      EXPECT_EQ(given.loss, by_default.loss);
      EXPECT_EQ(given.loss_without_tape, by_default.loss_without_tape);
      EXPECT_EQ(given.grad, by_default.grad);
      // And another normaliser does change them, by own / normaliser.
      const LossAndGradient doubled = loss_and_gradient(logits, labels, b.group, mode, 2.0 * own, upstream);
      EXPECT_NEAR(doubled.loss, by_default.loss / 2.0f, 1e-6 * std::abs(by_default.loss));
      EXPECT_NE(doubled.loss, by_default.loss);
    }
  }
}

// Rows of `b` whose group is in [first_group, end_group), group ids renumbered from 0 and the
// targets cut to the slice's own longest (as the batcher pads each batch to its own length).
struct Slice {
  std::vector<int64_t> rows;  // rows of the whole batch, in order
  std::vector<int64_t> group, labels;
  int64_t length = 0;
};

Slice slice_of(const RandomBatch& b, int64_t first_group, int64_t end_group) {
  Slice s;
  for (int64_t r = 0; r < b.rows; ++r) {
    const int64_t g = b.group[static_cast<size_t>(r)];
    if (g < first_group || g >= end_group) continue;
    s.rows.push_back(r);
    s.group.push_back(g - first_group);
    for (int64_t t = 0; t < b.length; ++t) {
      if (b.labels[static_cast<size_t>(r * b.length + t)] != -100) s.length = std::max(s.length, t + 1);
    }
  }
  s.length = std::max<int64_t>(s.length, 1);
  for (int64_t r : s.rows) {
    for (int64_t t = 0; t < s.length; ++t) s.labels.push_back(b.labels[static_cast<size_t>(r * b.length + t)]);
  }
  return s;
}

// What data parallelism and gradient accumulation rely on: two slices of a batch (different
// groups, rows and padded lengths), each divided by the whole batch's normaliser, give losses
// that add up to the whole batch's loss and gradients that are the whole batch's gradient rows.
TEST(CaptionLossFromLogits, SlicesDividedByTheWholeNormaliserAddUpToTheWholeBatch) {
  std::mt19937 rng(65);
  constexpr int64_t kSliceVocab = 29;
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    for (int trial = 0; trial < 3; ++trial) {
      // The whole batch padded two positions beyond its longest target, so every slice (cut to
      // its own longest) is shorter than the whole.
      RandomBatch b = random_batch(rng, mode, 7, 6, kSliceVocab);
      std::vector<int64_t> padded;
      for (int64_t r = 0; r < b.rows; ++r) {
        const auto row = b.labels.begin() + r * b.length;
        padded.insert(padded.end(), row, row + b.length);
        padded.insert(padded.end(), 2, -100);
      }
      b.labels = padded;
      b.length += 2;
      const Slice first = slice_of(b, 0, 3), second = slice_of(b, 3, 7);
      SCOPED_TRACE(::testing::Message() << ops::caption_loss_name(mode) << " rows " << first.rows.size() << " + "
                                        << second.rows.size() << ", lengths " << first.length << " and "
                                        << second.length << " of " << b.length);
      const Tensor labels = Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels);
      const Tensor logits = testing::random_tensor({b.rows, b.length, kSliceVocab}, rng, -3.0f, 3.0f);
      const double whole_normaliser = ops::caption_loss_normaliser(labels, b.group, mode);
      if (whole_normaliser == 0.0) continue;
      const LossAndGradient whole = loss_and_gradient(logits, labels, b.group, mode, 0.0);

      double loss_sum = 0.0, normaliser_sum = 0.0;
      std::vector<float> grad(whole.grad.size(), 0.0f);  // the slices' gradients placed in the whole batch's rows
      for (const Slice* s : {&first, &second}) {
        const int64_t rows = static_cast<int64_t>(s->rows.size());
        const Tensor slice_labels = Tensor::from_vector<int64_t>({rows, s->length}, s->labels);
        std::vector<float> values;
        const std::vector<float> all = logits.to_vector<float>();
        for (int64_t r : s->rows) {
          const auto row = all.begin() + r * b.length * kSliceVocab;
          values.insert(values.end(), row, row + s->length * kSliceVocab);
        }
        const Tensor slice_logits = Tensor::from_vector<float>({rows, s->length, kSliceVocab}, values);
        normaliser_sum += ops::caption_loss_normaliser(slice_labels, s->group, mode);
        const LossAndGradient part = loss_and_gradient(slice_logits, slice_labels, s->group, mode, whole_normaliser);
        loss_sum += part.loss;
        EXPECT_NEAR(part.loss_without_tape, part.loss, 1e-6 * std::abs(part.loss) + 1e-12);
        for (int64_t i = 0; i < rows; ++i) {
          for (int64_t e = 0; e < s->length * kSliceVocab; ++e) {
            grad[static_cast<size_t>(s->rows[static_cast<size_t>(i)] * b.length * kSliceVocab + e)] =
                part.grad[static_cast<size_t>(i * s->length * kSliceVocab + e)];
          }
        }
      }
      EXPECT_NEAR(normaliser_sum, whole_normaliser, 1e-12 * whole_normaliser);
      EXPECT_NEAR(loss_sum, whole.loss, 1e-6 * std::abs(whole.loss));
      double largest = 0.0, largest_difference = 0.0;
      for (size_t i = 0; i < grad.size(); ++i) {
        largest = std::max(largest, static_cast<double>(std::abs(whole.grad[i])));
        largest_difference = std::max(largest_difference, static_cast<double>(std::abs(grad[i] - whole.grad[i])));
      }
      EXPECT_GT(largest, 0.0);
      EXPECT_LT(largest_difference, 1e-6 * largest);
    }
  }
}

TEST(CaptionLossFromLogits, BadInputsAreNamed) {
  const Tensor logits = Tensor::zeros({3, 2, 5});
  const Tensor labels = Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 3, 4, -100});
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const EngineError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  auto ids = [](std::vector<int64_t> values) { return group_tensor(values); };
  const auto mean = ops::CaptionLoss::kMean;
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 0, 1}), ops::CaptionLoss::kTokenMixture); }),
              HasSubstr("token_mixture needs one target per group, but rows 0 and 1 of group 0 differ at position 1"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, -1, 1}), mean); }),
              HasSubstr("negative group id -1 at row 1"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 7, 1}), mean); }),
              HasSubstr("group 2 has no rows (group ids must be 0..G-1; the largest is 7 for 3 rows)"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 2, 2}), mean); }),
              HasSubstr("group 1 has no rows"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 1}), mean); }),
              HasSubstr("2 group ids for 3 rows"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, Tensor::zeros({3}), mean); }),
              HasSubstr("group"));
  EXPECT_THAT(message([&] {
                ops::caption_loss_from_logits(logits, Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 3, 5, -100}),
                                              ids({0, 1, 2}), mean);
              }),
              HasSubstr("label 5 at position 4"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(Tensor::zeros({3, 5}), labels, ids({0, 1, 2}), mean); }),
              HasSubstr("logits"));
  // The caller-given normaliser must be a finite value >= 0.
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 1, 2}), mean, -100, -1.0); }),
              HasSubstr("caption_loss_from_logits: normaliser must be finite and >= 0 (0 = this batch's own), got -1 "
                        "for logits f32[3, 2, 5] on cpu"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 1, 2}), mean, -100, NAN); }),
              HasSubstr("caption_loss_from_logits: normaliser must be finite and >= 0"));
  EXPECT_THAT(message([&] { ops::caption_loss_from_logits(logits, labels, ids({0, 1, 2}), mean, -100, INFINITY); }),
              HasSubstr("caption_loss_from_logits: normaliser must be finite and >= 0"));
  // caption_loss_normaliser validates as the op does.
  EXPECT_THAT(message([&] { ops::caption_loss_normaliser(labels, {0, 1}, mean); }),
              HasSubstr("caption_loss_normaliser: 2 group ids for 3 rows of labels i64[3, 2] on cpu"));
  EXPECT_THAT(message([&] { ops::caption_loss_normaliser(labels, {0, 0, 1}, ops::CaptionLoss::kTokenMixture); }),
              HasSubstr("caption_loss_normaliser: token_mixture needs one target per group"));
  EXPECT_THAT(message([&] { ops::caption_loss_normaliser(Tensor::zeros({3}, DType::kI64), {0, 1, 2}, mean); }),
              HasSubstr("caption_loss_normaliser: labels must have 2 dimensions"));
}

// bf16 logits are for the CUDA devices: the CPU backend refuses them naming its method (the
// vocabulary pass of each path), not reading bf16 bits as floats.
TEST(CaptionLossFromLogits, CpuRefusesBf16LogitsNamingTheMethod) {
  const Tensor logits = Tensor::zeros({3, 2, 5}, DType::kBF16);
  const Tensor labels = Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 3, 4, -100});
  const Tensor group = group_tensor({0, 1, 2});
  const testing::CaughtError plain = testing::catch_error(
      [&] { ops::caption_loss_from_logits(logits, labels, group, ops::CaptionLoss::kSequenceMixture); });
  EXPECT_EQ(plain.kind, ErrorKind::kUnimplemented);
  EXPECT_THAT(plain.message, HasSubstr("caption_loss_log_probs: the cpu backend computes activations in f32, got bf16"));
  const Tensor leaf = logits.clone();
  leaf.set_requires_grad(true);
  Tape tape;
  EXPECT_THAT(testing::catch_error([&] { ops::caption_loss_from_logits(leaf, labels, group, ops::CaptionLoss::kMean); })
                  .message,
              HasSubstr("caption_loss_mean_fused: the cpu backend computes activations in f32, got bf16"));
  EXPECT_THAT(testing::catch_error([&] { ops::token_log_probs(logits.view({6, 5}), labels.view({6})); }).message,
              HasSubstr("caption_loss_log_probs: the cpu backend computes activations in f32"));
}

}  // namespace
}  // namespace la3
