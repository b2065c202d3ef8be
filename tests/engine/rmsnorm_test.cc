// T5 RMSNorm, y = x * rsqrt(mean(x^2) + eps) * weight, against a double reference and finite
// differences of it, for x and the weight: an odd width (13), a row that is zero but for one
// entry, a single row, rank 3, an eps large enough to matter, and bad input.
#include "engine/ops/rmsnorm.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "engine/autograd/tape.h"
#include "engine/ops/elementwise.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
using testing::DoubleInputs;

std::vector<double> rmsnorm_reference(const DoubleInputs& in, size_t cols, double eps) {
  const std::vector<double>& x = in[0];
  const std::vector<double>& weight = in[1];
  std::vector<double> out(x.size());
  for (size_t row = 0; row < x.size() / cols; ++row) {
    double mean_square = 0.0;
    for (size_t c = 0; c < cols; ++c) mean_square += x[row * cols + c] * x[row * cols + c];
    mean_square /= static_cast<double>(cols);
    const double inverse_rms = 1.0 / std::sqrt(mean_square + eps);
    for (size_t c = 0; c < cols; ++c) out[row * cols + c] = x[row * cols + c] * inverse_rms * weight[c];
  }
  return out;
}

testing::GradCheckReport check_rmsnorm(const std::string& label, const Tensor& x, const Tensor& weight, float eps) {
  const size_t cols = static_cast<size_t>(weight.size(0));
  const testing::GradCheckReport report = testing::check_op(
      label, [eps](const std::vector<Tensor>& in) { return ops::rmsnorm(in[0], in[1], eps); },
      // The reference takes eps as the float the op received, widened exactly.
      [cols, eps](const DoubleInputs& in) { return rmsnorm_reference(in, cols, static_cast<double>(eps)); },
      {x, weight}, {true, true});
  testing::print_report(label, report);
  return report;
}

TEST(RmsNorm, OddWidthWithARowZeroButForOneEntry) {
  std::mt19937 rng(51);
  Tensor x = testing::random_tensor({4, 13}, rng, -2.0f, 2.0f);
  float* row = x.data<float>() + 13;  // row 1: a single nonzero entry
  for (int c = 0; c < 13; ++c) row[c] = c == 4 ? 0.3f : 0.0f;
  check_rmsnorm("rmsnorm [4,13] sparse row", x, testing::random_tensor({13}, rng, 0.5f, 1.5f), 1e-6f);
}

TEST(RmsNorm, SingleRowAndHigherRank) {
  std::mt19937 rng(52);
  check_rmsnorm("rmsnorm [1,13]", testing::random_tensor({1, 13}, rng, -2.0f, 2.0f),
                testing::random_tensor({13}, rng, 0.5f, 1.5f), 1e-6f);
  check_rmsnorm("rmsnorm [13]", testing::random_tensor({13}, rng, -2.0f, 2.0f),
                testing::random_tensor({13}, rng, 0.5f, 1.5f), 1e-6f);
  check_rmsnorm("rmsnorm [2,3,7]", testing::random_tensor({2, 3, 7}, rng, -2.0f, 2.0f),
                testing::random_tensor({7}, rng, -1.5f, 1.5f), 1e-6f);
  // (A width-1 row is left out of the finite-difference checks: with eps 1e-6 its output is
  // x / sqrt(x^2 + eps), whose gradient eps / (x^2 + eps)^1.5 is pure cancellation in fp32.)
}

TEST(RmsNorm, EpsIsHonoured) {
  // eps 0.1 is comparable to mean(x^2) for these small inputs, so an op that ignored it or
  // used its own would be far off. Includes an all-zero row (output 0, gradient r * w * dout).
  std::mt19937 rng(53);
  Tensor x = testing::random_tensor({3, 5}, rng, -0.5f, 0.5f);
  std::fill_n(x.data<float>() + 5, 5, 0.0f);
  check_rmsnorm("rmsnorm eps 0.1 with zero row", x, testing::random_tensor({5}, rng, 0.5f, 1.5f), 0.1f);

  // Hand value: x = [1e-3] * 4, eps = 1e-2: mean square 1e-6, y = 1e-3 / sqrt(1e-6 + 1e-2).
  const Tensor tiny = ops::rmsnorm(Tensor::full({1, 4}, 1e-3), Tensor::full({4}, 2.0), 1e-2f);
  EXPECT_NEAR(tiny.item(0), 2.0 * 1e-3 / std::sqrt(1e-6 + 1e-2), 1e-8);
  // And the default eps (1e-6, T5's) is what rmsnorm(x, w) uses.
  const Tensor with_default = ops::rmsnorm(Tensor::full({1, 4}, 1e-3), Tensor::full({4}, 1.0));
  EXPECT_NEAR(with_default.item(0), 1e-3 / std::sqrt(1e-6 + 1e-6), 1e-6);
  // An all-zero row normalises to 0, not NaN.
  for (float v : ops::rmsnorm(Tensor::zeros({2, 4}), Tensor::full({4}, 1.0)).to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(RmsNorm, WeightGradientSumsOverRows) {
  // x rows [3, 4] and [0, 2] (widths 2): rms 3.5355 and 1.4142 (eps negligible). With dout
  // all ones, dweight[c] = sum over rows of x[r, c] / rms_r.
  Tape tape;
  const Tensor x = Tensor::from_vector<float>({2, 2}, {3.0f, 4.0f, 0.0f, 2.0f});
  const Tensor weight = Tensor::full({2}, 1.0);
  weight.set_requires_grad(true);
  tape.backward(ops::rmsnorm(x, weight), Tensor::full({2, 2}, 1.0));
  const double rms0 = std::sqrt(12.5 + 1e-6), rms1 = std::sqrt(2.0 + 1e-6);
  EXPECT_NEAR(weight.grad().item(0), 3.0 / rms0 + 0.0 / rms1, 1e-6);
  EXPECT_NEAR(weight.grad().item(1), 4.0 / rms0 + 2.0 / rms1, 1e-6);
  EXPECT_FALSE(x.grad().defined());  // x did not ask for one
}

TEST(RmsNorm, RandomShapes) {
  std::mt19937 rng(54);
  std::uniform_int_distribution<int64_t> extent(2, 17);
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t rows = trial == 0 ? 1 : extent(rng), cols = extent(rng);
    check_rmsnorm("rmsnorm random [" + std::to_string(rows) + "," + std::to_string(cols) + "]",
                  testing::random_tensor({rows, cols}, rng, -2.0f, 2.0f),
                  testing::random_tensor({cols}, rng, 0.5f, 1.5f), 1e-6f);
  }
}

TEST(RmsNorm, BadInputNamesTheOpAndBothShapes) {
  using testing::error_message;
  EXPECT_THAT(error_message([] { ops::rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({4})); }),
              HasSubstr("rmsnorm: weight f32[4] on cpu does not match the last dimension of x f32[2, 3] on cpu"));
  EXPECT_THAT(error_message([] { ops::rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({1, 3})); }),
              HasSubstr("rmsnorm: weight must have 1 dimensions, got f32[1, 3] on cpu"));
  EXPECT_THAT(error_message([] { ops::rmsnorm(Tensor::scalar(1.0f), Tensor::zeros({1})); }),
              HasSubstr("does not match the last dimension of x f32[] on cpu"));
  EXPECT_THAT(error_message([] { ops::rmsnorm(Tensor::zeros({2, 3}, DType::kI32), Tensor::zeros({3})); }),
              HasSubstr("rmsnorm: x must be f32 or bf16, got i32[2, 3] on cpu"));
  EXPECT_THAT(error_message([] { ops::rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({3}, DType::kBF16)); }),
              HasSubstr("rmsnorm: weight must be f32, got bf16[3] on cpu"));
  EXPECT_THAT(error_message([] { ops::rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({3}), 0.0f); }),
              HasSubstr("rmsnorm: eps must be positive, got 0"));
  EXPECT_THAT(error_message([] {
                ops::rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({3}), std::numeric_limits<float>::quiet_NaN());
              }),
              HasSubstr("rmsnorm: eps must be positive"));
}

// ops::add_rmsnorm: the residual add and the following pre-norm in one kernel. Checked
// through sum + normed, so the gradient reaches the inputs through both outputs.
TEST(AddRmsNorm, MatchesTheReferenceAndFiniteDifferences) {
  std::mt19937 rng(55);
  for (const Shape& shape : {Shape{4, 13}, Shape{2, 3, 7}, Shape{1, 1}}) {
    const int64_t cols = shape.back();
    const size_t width = static_cast<size_t>(cols);
    const std::string label = "add_rmsnorm " + Tensor::zeros(shape).describe();
    const testing::GradCheckReport report = testing::check_op(
        label,
        [](const std::vector<Tensor>& in) {
          const ops::AddRmsNorm r = ops::add_rmsnorm(in[0], in[1], in[2], 1e-6f);
          return ops::add(r.sum, r.normed);
        },
        [width](const DoubleInputs& in) {
          std::vector<double> sum(in[0].size());
          for (size_t i = 0; i < sum.size(); ++i) sum[i] = in[0][i] + in[1][i];
          std::vector<double> out = rmsnorm_reference({sum, in[2]}, width, static_cast<double>(1e-6f));
          for (size_t i = 0; i < out.size(); ++i) out[i] += sum[i];
          return out;
        },
        {testing::random_tensor(shape, rng, -2.0f, 2.0f), testing::random_tensor(shape, rng, -2.0f, 2.0f),
         testing::random_tensor({cols}, rng, 0.5f, 1.5f)},
        {true, true, true});
    testing::print_report(label, report);
  }
}

TEST(AddRmsNorm, IsBitIdenticalToAddThenRmsNormForwardAndBackward) {
  std::mt19937 rng(56);
  const Tensor residual = testing::random_tensor({3, 5, 24}, rng, -2.0f, 2.0f);
  const Tensor branch = testing::random_tensor({3, 5, 24}, rng, -2.0f, 2.0f);
  const Tensor weight = testing::random_tensor({24}, rng, 0.5f, 1.5f);
  const Tensor upstream_sum = testing::random_tensor({3, 5, 24}, rng);
  const Tensor upstream_normed = testing::random_tensor({3, 5, 24}, rng);
  auto run = [&](bool fused) {
    for (const Tensor* t : {&residual, &branch, &weight}) {
      t->set_requires_grad(true);
      t->zero_grad();
    }
    Tape tape;
    Tensor sum, normed;
    if (fused) {
      const ops::AddRmsNorm r = ops::add_rmsnorm(residual, branch, weight);
      sum = r.sum;
      normed = r.normed;
    } else {
      sum = ops::add(residual, branch);
      normed = ops::rmsnorm(sum, weight);
    }
    const Tensor loss = ops::add(ops::mul(sum, upstream_sum), ops::mul(normed, upstream_normed));
    tape.backward(loss, Tensor::full(loss.shape(), 1.0));
    return std::vector<std::vector<float>>{sum.to_vector<float>(), normed.to_vector<float>(),
                                           residual.grad().to_vector<float>(), branch.grad().to_vector<float>(),
                                           weight.grad().to_vector<float>()};
  };
  const auto unfused = run(false);
  const auto fused = run(true);
  const char* names[] = {"sum", "normed", "d residual", "d branch", "d weight"};
  for (size_t i = 0; i < fused.size(); ++i) EXPECT_EQ(fused[i], unfused[i]) << names[i];
}

TEST(AddRmsNorm, BadInput) {
  using testing::error_message;
  EXPECT_THAT(error_message([] { ops::add_rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({3}), Tensor::zeros({3})); }),
              HasSubstr("add_rmsnorm: shape mismatch: residual is f32[2, 3] on cpu but branch is f32[3] on cpu"));
  EXPECT_THAT(
      error_message([] { ops::add_rmsnorm(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), Tensor::zeros({4})); }),
      HasSubstr("add_rmsnorm: weight f32[4] on cpu does not match the last dimension of x f32[2, 3] on cpu"));
  EXPECT_THAT(error_message([] {
                ops::add_rmsnorm(Tensor::zeros({2, 3}, DType::kBF16), Tensor::zeros({2, 3}), Tensor::zeros({3}));
              }),
              HasSubstr("add_rmsnorm: residual bf16[2, 3] on cpu and branch f32[2, 3] on cpu must have the same "
                        "element type"));
}

// bf16 activations (the CPU keeps its bf16 RMSNorm): the output is bf16, the fp32 op on the
// same (widened) input rounded once; differentiated, dx is bf16 and dweight f32, within bf16
// rounding of the fp32 op's gradients.
TEST(RmsNorm, Bf16InputGivesABf16OutputWithinRounding) {
  std::mt19937 rng(57);
  const Tensor x32 = testing::random_tensor({6, 40}, rng, -2.0f, 2.0f).to(DType::kBF16).to(DType::kF32);
  const Tensor weight = testing::random_tensor({40}, rng, 0.5f, 1.5f);
  const Tensor out = ops::rmsnorm(x32.to(DType::kBF16), weight);
  ASSERT_EQ(out.dtype(), DType::kBF16);
  const Tensor expected = ops::rmsnorm(x32, weight);
  EXPECT_EQ(out.to(DType::kF32).to_vector<float>(), expected.to(DType::kBF16).to(DType::kF32).to_vector<float>())
      << "the CPU's bf16 path is the fp32 computation rounded once";

  const Tensor upstream = testing::random_tensor({6, 40}, rng).to(DType::kBF16).to(DType::kF32);
  auto gradients = [&](DType act) {
    Tape tape;
    const Tensor x = x32.to(act);
    const Tensor w = weight.to(DType::kF32);
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    tape.backward(ops::rmsnorm(x, w), upstream);
    return std::pair<Tensor, Tensor>{x.grad(), w.grad()};
  };
  const auto [dx16, dw16] = gradients(DType::kBF16);
  const auto [dx32, dw32] = gradients(DType::kF32);
  ASSERT_EQ(dx16.dtype(), DType::kBF16);
  ASSERT_EQ(dw16.dtype(), DType::kF32);
  EXPECT_LT(testing::normalized_error(dx16.to(DType::kF32), dx32), 1e-5);  // dx rounded once
  EXPECT_LT(testing::normalized_error(dw16, dw32), 1e-10);                 // same bf16-exact inputs, f32 sums
}

}  // namespace
}  // namespace la3
