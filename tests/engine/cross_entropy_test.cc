// Token cross-entropy (fused log-softmax) against a hand-computed example, a double reference
// and finite differences: ignore_index rows, mean vs sum, all rows ignored, i32 labels, a
// custom ignore_index, large logits, and bad labels.
#include "engine/ops/cross_entropy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/autograd/tape.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::DoubleInputs;

// Mean (over non-ignored rows) or sum of -log softmax(z_r)[label_r], in double.
double cross_entropy_reference(const std::vector<double>& logits, const std::vector<int64_t>& labels, size_t vocab,
                               ops::Reduction reduction, int64_t ignore_index = -100) {
  double total = 0.0;
  int64_t counted = 0;
  for (size_t row = 0; row < labels.size(); ++row) {
    if (labels[row] == ignore_index) continue;
    const double* z = logits.data() + row * vocab;
    double max_value = -INFINITY, sum = 0.0;
    for (size_t c = 0; c < vocab; ++c) max_value = std::max(max_value, z[c]);
    for (size_t c = 0; c < vocab; ++c) sum += std::exp(z[c] - max_value);
    total += max_value + std::log(sum) - z[static_cast<size_t>(labels[row])];
    ++counted;
  }
  if (counted == 0) return 0.0;
  return reduction == ops::Reduction::kMean ? total / static_cast<double>(counted) : total;
}

void check_cross_entropy(const std::string& label, const Tensor& logits, const Tensor& labels,
                         const ops::CrossEntropyOptions& options) {
  const std::vector<int64_t> label_values = labels.to(DType::kI64).to_vector<int64_t>();
  const size_t vocab = static_cast<size_t>(logits.size(-1));
  const testing::GradCheckReport report = testing::check_op(
      label, [&](const std::vector<Tensor>& in) { return ops::cross_entropy(in[0], labels, options); },
      [&](const DoubleInputs& in) {
        return std::vector<double>{
            cross_entropy_reference(in[0], label_values, vocab, options.reduction, options.ignore_index)};
      },
      {logits}, {true});
  testing::print_report(label, report);
}

TEST(CrossEntropy, HandComputedTwoByThree) {
  // logits [[1, 2, 3], [1, 1, 1]], labels [2, 0].
  //   row 0: log(e + e^2 + e^3) - 3 = log(1 + e^-1 + e^-2) = log(1.5032147244) = 0.4076059644
  //   row 1: log(3 e) - 1 = log 3 = 1.0986122887
  //   mean 0.7531091266, sum 1.5062182531
  // Gradient of the mean: (softmax - onehot) / 2 per row, softmax(row 0) =
  //   [0.0900305732, 0.2447284711, 0.6652409558], softmax(row 1) = [1/3, 1/3, 1/3].
  // (torch.nn.functional.cross_entropy gives 0.7531091 and the same gradient in fp32.)
  const Tensor labels = Tensor::from_vector<int64_t>({2}, {2, 0});
  Tape tape;
  const Tensor logits = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 1, 1, 1});
  logits.set_requires_grad(true);
  const Tensor loss = ops::cross_entropy(logits, labels);
  EXPECT_EQ(loss.rank(), 0);
  EXPECT_NEAR(loss.item(), 0.7531091265562448, 1e-6);
  tape.backward(loss);
  const std::vector<float> grad = logits.grad().to_vector<float>();
  const std::vector<double> expected = {0.0900305732 / 2, 0.2447284711 / 2, (0.6652409558 - 1) / 2,
                                        (1.0 / 3 - 1) / 2, 1.0 / 6,          1.0 / 6};
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(grad[i], expected[i], 1e-7) << "element " << i;

  ops::CrossEntropyOptions sum;
  sum.reduction = ops::Reduction::kSum;
  EXPECT_NEAR(ops::cross_entropy(logits, labels, sum).item(), 1.5062182531124897, 2e-6);
}

TEST(CrossEntropy, IgnoredRowsMeanAndSum) {
  std::mt19937 rng(91);
  const Tensor labels = Tensor::from_vector<int64_t>({2, 3}, {2, -100, 0, 6, -100, 4});
  for (ops::Reduction reduction : {ops::Reduction::kMean, ops::Reduction::kSum}) {
    ops::CrossEntropyOptions options;
    options.reduction = reduction;
    check_cross_entropy(std::string("cross_entropy [2,3,7] ignored rows, ") +
                            (reduction == ops::Reduction::kMean ? "mean" : "sum"),
                        testing::random_tensor({2, 3, 7}, rng, -3.0f, 3.0f), labels, options);
  }
  // The mean divides by the 4 counted rows, not the 6 rows.
  const Tensor uniform = Tensor::zeros({2, 3, 7});
  EXPECT_NEAR(ops::cross_entropy(uniform, labels).item(), std::log(7.0), 1e-6);
  ops::CrossEntropyOptions sum;
  sum.reduction = ops::Reduction::kSum;
  EXPECT_NEAR(ops::cross_entropy(uniform, labels, sum).item(), 4 * std::log(7.0), 1e-5);
}

TEST(CrossEntropy, IgnoredRowsGetExactlyZeroGradient) {
  Tape tape;
  std::mt19937 rng(92);
  const Tensor logits = testing::random_tensor({3, 5}, rng);
  logits.set_requires_grad(true);
  tape.backward(ops::cross_entropy(logits, Tensor::from_vector<int32_t>({3}, {1, -100, 4})));
  const std::vector<float> grad = logits.grad().to_vector<float>();
  for (size_t c = 0; c < 5; ++c) EXPECT_EQ(grad[5 + c], 0.0f);
  double row0_sum = 0.0;
  for (size_t c = 0; c < 5; ++c) row0_sum += grad[c];
  EXPECT_NEAR(row0_sum, 0.0, 1e-7);  // softmax - onehot sums to zero
}

TEST(CrossEntropy, AllIgnoredGivesZeroLossAndZeroGradient) {
  // torch returns NaN here (0 / 0); a batch of pure padding must not poison training.
  for (ops::Reduction reduction : {ops::Reduction::kMean, ops::Reduction::kSum}) {
    Tape tape;
    const Tensor logits = Tensor::full({2, 4}, 0.5);
    logits.set_requires_grad(true);
    ops::CrossEntropyOptions options;
    options.reduction = reduction;
    const Tensor loss = ops::cross_entropy(logits, Tensor::from_vector<int64_t>({2}, {-100, -100}), options);
    EXPECT_EQ(loss.item(), 0.0);
    tape.backward(loss);
    EXPECT_EQ(logits.grad().to_vector<float>(), std::vector<float>(8, 0.0f));
  }
}

TEST(CrossEntropy, I32LabelsCustomIgnoreIndexAndSingleRow) {
  std::mt19937 rng(93);
  check_cross_entropy("cross_entropy i32 labels", testing::random_tensor({4, 9}, rng, -2.0f, 2.0f),
                      Tensor::from_vector<int32_t>({4}, {8, 0, -100, 3}), {});
  // Pad id 0 as the ignored label; -100 is then an ordinary (out-of-range) label.
  ops::CrossEntropyOptions pad_ignored;
  pad_ignored.ignore_index = 0;
  check_cross_entropy("cross_entropy ignore_index 0", testing::random_tensor({4, 9}, rng, -2.0f, 2.0f),
                      Tensor::from_vector<int64_t>({4}, {8, 0, 0, 3}), pad_ignored);
  EXPECT_THAT(testing::error_message([&] {
                ops::cross_entropy(Tensor::zeros({1, 9}), Tensor::from_vector<int64_t>({1}, {-100}), pad_ignored);
              }),
              HasSubstr("label -100 at position 0"));
  // A length-1 sequence, and logits of rank 1 with a scalar label.
  check_cross_entropy("cross_entropy [1,1,9]", testing::random_tensor({1, 1, 9}, rng, -2.0f, 2.0f),
                      Tensor::from_vector<int64_t>({1, 1}, {5}), {});
  check_cross_entropy("cross_entropy [9] scalar label", testing::random_tensor({9}, rng, -2.0f, 2.0f),
                      Tensor::from_vector<int64_t>({}, {2}), {});
}

TEST(CrossEntropy, LargeLogitsAreStable) {
  // Without the max subtraction exp(1000) is inf and the loss NaN.
  const Tensor logits = Tensor::from_vector<float>({2, 3}, {1000, 999, 998, -1000, -1000, -1000});
  const double loss = ops::cross_entropy(logits, Tensor::from_vector<int64_t>({2}, {0, 1})).item();
  // Row 0: log(1 + e^-1 + e^-2) = 0.4076059644; row 1: log 3. Both to fp32 precision of the
  // loss itself: an implementation that forms lse = max + log(sum) in fp32 and then subtracts
  // z[label] is off by up to half an ulp of 1000 (3e-5).
  EXPECT_NEAR(loss, (0.40760596444438013 + 1.0986122886681096) / 2, 1e-6);
  ops::CrossEntropyOptions sum;
  sum.reduction = ops::Reduction::kSum;
  const Tensor first_row = logits.narrow(0, 0, 1);
  EXPECT_NEAR(ops::cross_entropy(first_row, Tensor::from_vector<int64_t>({1}, {0}), sum).item(),
              0.40760596444438013, 1e-7);
  EXPECT_NEAR(ops::cross_entropy(first_row, Tensor::from_vector<int64_t>({1}, {2}), sum).item(),
              2.4076059644443801, 1e-6);
  std::mt19937 rng(94);
  check_cross_entropy("cross_entropy logits ~ 1000", testing::random_tensor({3, 5}, rng, 998.0f, 1002.0f),
                      Tensor::from_vector<int64_t>({3}, {4, 0, 2}), {});
}

TEST(CrossEntropy, BadLabelsNameTheLabelPositionAndShapes) {
  using testing::catch_error;
  const testing::CaughtError out_of_range = catch_error(
      [] { ops::cross_entropy(Tensor::zeros({3, 5}), Tensor::from_vector<int64_t>({3}, {0, -100, 5})); });
  EXPECT_EQ(out_of_range.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(out_of_range.message,
              HasSubstr("cross_entropy: label 5 at position 2 of labels i64[3] on cpu is outside [0, 5) and is not "
                        "ignore_index -100"));
  EXPECT_THAT(catch_error([] {
                ops::cross_entropy(Tensor::zeros({2, 5}), Tensor::from_vector<int32_t>({2}, {-1, 0}));
              }).message,
              HasSubstr("label -1 at position 0"));
  const testing::CaughtError shape = catch_error(
      [] { ops::cross_entropy(Tensor::zeros({2, 3, 5}), Tensor::zeros({3, 2}, DType::kI64)); });
  EXPECT_EQ(shape.kind, ErrorKind::kInvalidArgument);
  EXPECT_THAT(shape.message, HasSubstr("cross_entropy: labels i64[3, 2] on cpu do not match logits f32[2, 3, 5] on "
                                       "cpu (expected labels of shape [2, 3])"));
  EXPECT_THAT(catch_error([] { ops::cross_entropy(Tensor::zeros({2, 3}), Tensor::zeros({2})); }).message,
              HasSubstr("cross_entropy: labels must be i32 or i64, got f32[2] on cpu"));
  EXPECT_THAT(catch_error([] {
                ops::cross_entropy(Tensor::zeros({2, 3}, DType::kBF16), Tensor::zeros({2}, DType::kI64));
              }).message,
              HasSubstr("cross_entropy_forward: the cpu backend computes activations in f32, got bf16"));
  EXPECT_THAT(catch_error([] {
                ops::cross_entropy(Tensor::zeros({2, 3}, DType::kI32), Tensor::zeros({2}, DType::kI64));
              }).message,
              HasSubstr("cross_entropy: logits must be f32 or bf16, got i32[2, 3] on cpu"));
  EXPECT_THAT(catch_error([] { ops::cross_entropy(Tensor::scalar(1.0f), Tensor::zeros({}, DType::kI64)); }).message,
              AllOf(HasSubstr("cross_entropy: labels i64[] on cpu do not match logits f32[] on cpu")));
}

}  // namespace
}  // namespace la3
