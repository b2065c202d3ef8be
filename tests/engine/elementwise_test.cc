// add, mul, scale and reshape against double references and finite differences: same shape,
// suffix broadcast (b repeated over a's leading dimensions, its gradient summed over them),
// a scalar b, one operand constant, length-1 and empty tensors, strided input, bad input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "engine/autograd/tape.h"
#include "engine/ops/convert.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reshape.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::DoubleInputs;

enum class Binary { kAdd, kMul };

Tensor apply(Binary kind, const Tensor& a, const Tensor& b) {
  return kind == Binary::kAdd ? ops::add(a, b) : ops::mul(a, b);
}

// a (op) b with b repeating every b.size() elements of a, in double.
std::vector<double> binary_reference(Binary kind, const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const double b_value = b[i % b.size()];
    out[i] = kind == Binary::kAdd ? a[i] + b_value : a[i] * b_value;
  }
  return out;
}

void check_binary(Binary kind, const Shape& a_shape, const Shape& b_shape, std::vector<bool> differentiable,
                  uint32_t seed) {
  std::mt19937 rng(seed);
  const std::string label = std::string(kind == Binary::kAdd ? "add " : "mul ") + shape_string(a_shape) + " " +
                            shape_string(b_shape) + (differentiable[1] ? "" : " (b constant)");
  const testing::GradCheckReport report = testing::check_op(
      label, [kind](const std::vector<Tensor>& x) { return apply(kind, x[0], x[1]); },
      [kind](const DoubleInputs& x) { return binary_reference(kind, x[0], x[1]); },
      {testing::random_tensor(a_shape, rng), testing::random_tensor(b_shape, rng)}, differentiable);
  testing::print_report(label, report);
}

TEST(Elementwise, AddAndMulSameShapeAndSuffixBroadcast) {
  for (Binary kind : {Binary::kAdd, Binary::kMul}) {
    check_binary(kind, {2, 3, 5}, {2, 3, 5}, {true, true}, 31);  // same shape
    check_binary(kind, {2, 3, 5}, {3, 5}, {true, true}, 32);     // suffix of rank 2
    check_binary(kind, {2, 3, 5}, {5}, {true, true}, 33);        // a bias over the last dimension
    check_binary(kind, {4, 7}, {}, {true, true}, 34);            // a scalar: the empty suffix
    check_binary(kind, {1}, {1}, {true, true}, 35);              // length 1
    check_binary(kind, {3, 1, 13}, {1, 13}, {true, true}, 36);   // a length-1 dimension in the suffix
    check_binary(kind, {2, 3, 5}, {5}, {true, false}, 37);       // only a needs a gradient
    check_binary(kind, {2, 3, 5}, {5}, {false, true}, 38);       // only b needs a gradient
  }
}

TEST(Elementwise, BroadcastGradientIsTheSumOverRepetitions) {
  // a [3, 2] + b [2] with upstream all ones: each b element is used 3 times.
  Tape tape;
  const Tensor a = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  const Tensor b = Tensor::from_vector<float>({2}, {10, 20});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor sum = ops::add(a, b);
  EXPECT_EQ(sum.to_vector<float>(), (std::vector<float>{11, 22, 13, 24, 15, 26}));
  const Tensor product = ops::mul(a, b);
  EXPECT_EQ(product.to_vector<float>(), (std::vector<float>{10, 40, 30, 80, 50, 120}));
  tape.backward(ops::add(sum, product), Tensor::full({3, 2}, 1.0));
  // d/da = 1 + b;  d/db = 3 (from add) + sum of a's column (from mul).
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{11, 21, 11, 21, 11, 21}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{3 + 9, 3 + 12}));
}

TEST(Elementwise, RandomShapes) {
  std::mt19937 shape_rng(77);
  std::uniform_int_distribution<int64_t> extent(1, 11);
  for (int trial = 0; trial < 5; ++trial) {
    Shape a_shape;
    const int rank = 1 + trial % 3;
    for (int d = 0; d < rank; ++d) a_shape.push_back(extent(shape_rng));
    const size_t suffix = static_cast<size_t>(trial) % (a_shape.size() + 1);
    const Shape b_shape(a_shape.end() - static_cast<long>(suffix), a_shape.end());
    check_binary(trial % 2 == 0 ? Binary::kAdd : Binary::kMul, a_shape, b_shape, {true, true},
                 200 + static_cast<uint32_t>(trial));
  }
}

TEST(Elementwise, Scale) {
  std::mt19937 rng(39);
  for (float alpha : {2.5f, -1.0f, 0.0f}) {
    const std::string label = "scale alpha " + std::to_string(alpha);
    const testing::GradCheckReport report = testing::check_op(
        label, [alpha](const std::vector<Tensor>& x) { return ops::scale(x[0], alpha); },
        [alpha](const DoubleInputs& x) {
          std::vector<double> out(x[0].size());
          for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(alpha) * x[0][i];
          return out;
        },
        {testing::random_tensor({3, 7}, rng)}, {true});
    testing::print_report(label, report);
  }
}

TEST(Elementwise, StridedInputsAndEmptyTensors) {
  // a narrowed (strided) a: the op reads the view's elements, not the storage under it.
  const Tensor full = Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor middle = full.narrow(1, 1, 2);  // [[2, 3], [6, 7]]
  EXPECT_EQ(ops::add(middle, Tensor::from_vector<float>({2}, {100, 200})).to_vector<float>(),
            (std::vector<float>{102, 203, 106, 207}));
  EXPECT_EQ(ops::mul(middle, middle).to_vector<float>(), (std::vector<float>{4, 9, 36, 49}));
  EXPECT_EQ(ops::scale(middle, -2.0f).to_vector<float>(), (std::vector<float>{-4, -6, -12, -14}));
  // Empty tensors pass through with their shape.
  EXPECT_EQ(ops::add(Tensor::zeros({0, 3}), Tensor::zeros({3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(ops::mul(Tensor::zeros({0}), Tensor::zeros({0})).numel(), 0);
}

TEST(Reshape, GradientFlowsBackToTheInputShape) {
  std::mt19937 rng(40);
  const testing::GradCheckReport report = testing::check_op(
      "reshape [3,4] -> [-1, 6] -> scale",
      [](const std::vector<Tensor>& x) { return ops::scale(ops::reshape(x[0], {-1, 6}), 3.0f); },
      [](const DoubleInputs& x) {
        std::vector<double> out(x[0].size());
        for (size_t i = 0; i < out.size(); ++i) out[i] = 3.0 * x[0][i];
        return out;
      },
      {testing::random_tensor({3, 4}, rng)}, {true});
  testing::print_report("reshape", report);

  // A strided leaf (columns 1..2 of a [2, 4] matrix): reshape must copy it, since no view
  // can express it, and still route the gradient to the leaf's own [2, 2] shape.
  Tape tape;
  const Tensor storage = Tensor::from_vector<float>({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  const Tensor strided_leaf = storage.narrow(1, 1, 2);
  strided_leaf.set_requires_grad(true);
  const Tensor flat = ops::reshape(strided_leaf, {4});
  EXPECT_EQ(flat.to_vector<float>(), (std::vector<float>{1, 2, 5, 6}));
  tape.backward(flat, Tensor::from_vector<float>({4}, {10, 20, 30, 40}));
  EXPECT_EQ(strided_leaf.grad().shape(), (Shape{2, 2}));
  EXPECT_EQ(strided_leaf.grad().to_vector<float>(), (std::vector<float>{10, 20, 30, 40}));
  EXPECT_FALSE(storage.grad().defined());

  const Tensor leaf = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  leaf.set_requires_grad(true);
  const Tensor reshaped = ops::reshape(leaf, {3, -1});
  EXPECT_EQ(reshaped.shape(), (Shape{3, 2}));
  EXPECT_FALSE(reshaped.same(leaf));  // a new handle: the leaf's gradient slot stays its own
  tape.backward(reshaped, Tensor::from_vector<float>({3, 2}, {6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(leaf.grad().shape(), (Shape{2, 3}));
  EXPECT_EQ(leaf.grad().to_vector<float>(), (std::vector<float>{6, 5, 4, 3, 2, 1}));
}

// ops::convert is torch's differentiable x.to(dtype): bf16 rounding forward (to nearest even),
// the gradient converted back to the input's type.
TEST(Convert, RoundsToBf16AndSendsTheGradientBackInTheInputsType) {
  Tape tape;
  const float third = 1.0f / 3.0f;
  const Tensor x = Tensor::from_vector<float>({3}, {third, 1.0f + 1.0f / 256.0f, -2.5f});
  x.set_requires_grad(true);
  const Tensor y = ops::convert(x, DType::kBF16);
  ASSERT_EQ(y.dtype(), DType::kBF16);
  const std::vector<float> rounded = y.to(DType::kF32).to_vector<float>();
  EXPECT_EQ(rounded[0], bf16_to_float(float_to_bf16(third)));
  EXPECT_NE(rounded[0], third);
  EXPECT_EQ(rounded[1], 1.0f);  // 1 + 2^-8 is halfway: ties to the even mantissa
  EXPECT_EQ(rounded[2], -2.5f);
  EXPECT_TRUE(ops::convert(x, DType::kF32).same(x));  // no conversion: the same tensor
  tape.backward(y, Tensor::from_vector<float>({3}, {1.0f, 2.0f, 3.0f}).to(DType::kBF16));
  ASSERT_EQ(x.grad().dtype(), DType::kF32);
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{1.0f, 2.0f, 3.0f}));
  EXPECT_THAT(testing::error_message([&] { ops::convert(Tensor::zeros({2}, DType::kI64), DType::kBF16); }),
              HasSubstr("convert: x must be f32 or bf16, got i64[2] on cpu"));
  EXPECT_THAT(testing::error_message([&] { ops::convert(x, DType::kI32); }),
              HasSubstr("convert: the target type must be f32 or bf16, got i32"));
}

TEST(Elementwise, BadInputNamesTheOpAndBothShapes) {
  using testing::error_message;
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  EXPECT_THAT(error_message([&] { ops::add(a, b); }),
              HasSubstr("add: cannot broadcast b f32[4, 5] on cpu to a f32[2, 3] on cpu"));
  // A prefix is not a suffix: [2] does not broadcast over [2, 3].
  EXPECT_THAT(error_message([&] { ops::mul(a, Tensor::zeros({2})); }),
              HasSubstr("mul: cannot broadcast b f32[2] on cpu to a f32[2, 3] on cpu"));
  // b larger than a is not broadcast the other way round.
  EXPECT_THAT(error_message([&] { ops::add(Tensor::zeros({3}), a); }),
              HasSubstr("add: cannot broadcast b f32[2, 3] on cpu to a f32[3] on cpu"));
  EXPECT_THAT(error_message([&] { ops::add(a, Tensor::zeros({2, 3}, DType::kI32)); }),
              HasSubstr("add: b must be f32 or bf16, got i32[2, 3] on cpu"));
  EXPECT_THAT(error_message([&] { ops::mul(Tensor::zeros({3}, DType::kBF16), Tensor::zeros({3})); }),
              HasSubstr("mul: a bf16[3] on cpu and b f32[3] on cpu must have the same element type"));
  EXPECT_THAT(error_message([&] { ops::scale(Tensor::zeros({2}, DType::kI64), 2.0f); }),
              HasSubstr("scale: x must be f32 or bf16, got i64[2] on cpu"));
  // bf16 activations are a CUDA-device feature: the cpu backend refuses them naming the method.
  EXPECT_THAT(error_message([&] { ops::add(Tensor::zeros({3}, DType::kBF16), Tensor::zeros({3}, DType::kBF16)); }),
              HasSubstr("add_forward: the cpu backend computes activations in f32, got bf16"));
  EXPECT_THAT(error_message([&] { ops::add(a, Tensor()); }), HasSubstr("add: b is undefined"));
  EXPECT_THAT(error_message([&] { ops::reshape(a, {4}); }),
              AllOf(HasSubstr("shape [4] has 4 elements"), HasSubstr("tensor f32[2, 3] on cpu has 6")));
  EXPECT_THAT(error_message([&] { ops::reshape(Tensor(), {4}); }), HasSubstr("reshape: input is undefined"));
}

}  // namespace
}  // namespace la3
