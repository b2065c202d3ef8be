// The k+1-caption losses (DESIGN.md 4) against a direct double-precision implementation
// from the logits, finite differences through token_log_probs, and k = 0 reducing exactly
// to plain token cross-entropy.
#include "engine/ops/sequence_loss.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/autograd/tape.h"
#include "engine/ops/cross_entropy.h"
#include "tests/support/gradcheck.h"

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

// The DESIGN.md formulas, written independently of sequence_loss.cc.
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

}  // namespace
}  // namespace la3
