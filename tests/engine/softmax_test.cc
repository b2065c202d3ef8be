// Softmax over the last dimension against a double reference and finite differences:
// odd widths, length-1 rows (output 1, gradient 0), rank 3, logits around +-1000 (the max
// subtraction must keep exp finite), and bad input.
#include "engine/ops/softmax.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/autograd/tape.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
using testing::DoubleInputs;

std::vector<double> softmax_reference(const std::vector<double>& x, size_t cols) {
  std::vector<double> out(x.size());
  for (size_t row = 0; row < x.size() / cols; ++row) {
    const double* z = x.data() + row * cols;
    double max_value = -INFINITY, sum = 0.0;
    for (size_t c = 0; c < cols; ++c) max_value = std::max(max_value, z[c]);
    for (size_t c = 0; c < cols; ++c) sum += std::exp(z[c] - max_value);
    for (size_t c = 0; c < cols; ++c) out[row * cols + c] = std::exp(z[c] - max_value) / sum;
  }
  return out;
}

void check_softmax(const std::string& label, const Tensor& x) {
  const size_t cols = static_cast<size_t>(x.size(-1));
  const testing::GradCheckReport report = testing::check_op(
      label, [](const std::vector<Tensor>& in) { return ops::softmax(in[0]); },
      [cols](const DoubleInputs& in) { return softmax_reference(in[0], cols); }, {x}, {true});
  testing::print_report(label, report);
}

TEST(Softmax, OddWidthsLengthOneRowsAndRankThree) {
  std::mt19937 rng(61);
  check_softmax("softmax [3,11]", testing::random_tensor({3, 11}, rng, -3.0f, 3.0f));
  check_softmax("softmax [4,1]", testing::random_tensor({4, 1}, rng, -3.0f, 3.0f));
  check_softmax("softmax [2,3,5]", testing::random_tensor({2, 3, 5}, rng, -3.0f, 3.0f));
  check_softmax("softmax [7]", testing::random_tensor({7}, rng, -3.0f, 3.0f));
  // Length-1 rows: exactly 1, and no gradient can change them.
  Tape tape;
  const Tensor x = Tensor::from_vector<float>({3, 1}, {-5.0f, 0.0f, 80.0f});
  x.set_requires_grad(true);
  const Tensor y = ops::softmax(x);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1.0f, 1.0f, 1.0f}));
  tape.backward(y, Tensor::from_vector<float>({3, 1}, {2.0f, -1.0f, 7.0f}));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0.0f, 0.0f, 0.0f}));
}

TEST(Softmax, LargeLogitsStayFinite) {
  // exp(1000) overflows fp32 (and fp64): only the max-subtracted form gives these values.
  const std::vector<float> y =
      ops::softmax(Tensor::from_vector<float>({2, 3}, {1000.0f, 1000.0f, -1000.0f, 1000.0f, 999.0f, 998.0f}))
          .to_vector<float>();
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_FLOAT_EQ(y[1], 0.5f);
  EXPECT_EQ(y[2], 0.0f);
  // Row 2 is softmax([2, 1, 0]): e^2, e, 1 over their sum 11.107337927389695.
  EXPECT_NEAR(y[3], 0.6652409557748219, 1e-6);
  EXPECT_NEAR(y[4], 0.24472847105479764, 1e-6);
  EXPECT_NEAR(y[5], 0.09003057317038046, 1e-6);
  // Gradients around 1000 as well (fp32 logits there are spaced 6e-5 apart; the reference
  // sees the same rounded values).
  std::mt19937 rng(62);
  check_softmax("softmax logits ~ +1000", testing::random_tensor({3, 6}, rng, 998.0f, 1002.0f));
  check_softmax("softmax logits ~ -1000", testing::random_tensor({3, 6}, rng, -1002.0f, -998.0f));
}

TEST(Softmax, RandomShapes) {
  std::mt19937 rng(63);
  std::uniform_int_distribution<int64_t> extent(1, 19);
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t rows = extent(rng), cols = trial == 0 ? 1 : extent(rng);
    check_softmax("softmax random [" + std::to_string(rows) + "," + std::to_string(cols) + "]",
                  testing::random_tensor({rows, cols}, rng, -4.0f, 4.0f));
  }
}

TEST(Softmax, BadInput) {
  using testing::error_message;
  EXPECT_THAT(error_message([] { ops::softmax(Tensor::zeros({2, 3}, DType::kI32)); }),
              HasSubstr("softmax: x must be f32 or bf16, got i32[2, 3] on cpu"));
  EXPECT_THAT(error_message([] { ops::softmax(Tensor::scalar(1.0f)); }),
              HasSubstr("softmax: x must have a dimension, got f32[] on cpu"));
  EXPECT_THAT(error_message([] { ops::softmax(Tensor()); }), HasSubstr("softmax: x is undefined"));
  // An empty last dimension yields an empty result rather than dividing by zero.
  EXPECT_EQ(ops::softmax(Tensor::zeros({3, 0})).shape(), (Shape{3, 0}));
}

}  // namespace
}  // namespace la3
