// relu, gelu_new and the gated-GELU product against double references and finite
// differences. gelu_new is checked against the formula of transformers' NewGELUActivation,
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), evaluated in double.
#include "engine/ops/activation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "engine/autograd/tape.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
using testing::DoubleInputs;

double gelu_new_reference(double x) {
  const double sqrt_2_over_pi = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}

std::vector<double> map_reference(const std::vector<double>& x, double (*fn)(double)) {
  std::vector<double> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = fn(x[i]);
  return out;
}

TEST(Activation, ReluAwayFromTheKink) {
  // |x| >= 0.05 > the finite-difference step, so the differences never straddle 0.
  std::mt19937 rng(41);
  for (const Shape& shape : {Shape{3, 7}, Shape{1}, Shape{2, 1, 13}}) {
    Tensor x = testing::random_tensor(shape, rng, 0.05f, 2.0f);
    float* values = x.data<float>();
    for (int64_t i = 0; i < x.numel(); i += 2) values[i] = -values[i];
    const std::string label = "relu " + shape_string(shape);
    const testing::GradCheckReport report = testing::check_op(
        label, [](const std::vector<Tensor>& in) { return ops::relu(in[0]); },
        [](const DoubleInputs& in) { return map_reference(in[0], [](double v) { return std::max(v, 0.0); }); },
        {x}, {true});
    testing::print_report(label, report);
  }
}

TEST(Activation, ReluGradientAtZeroIsZero) {
  Tape tape;
  const Tensor x = Tensor::from_vector<float>({4}, {0.0f, -0.0f, -1.0f, 2.0f});
  x.set_requires_grad(true);
  const Tensor y = ops::relu(x);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{0.0f, 0.0f, 0.0f, 2.0f}));
  tape.backward(y, Tensor::full({4}, 3.0));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0.0f, 0.0f, 0.0f, 3.0f}));
}

TEST(Activation, GeluNewMatchesTheFormula) {
  // Known values of the formula (Python float64): gelu_new(1) = 0.8411919906082768,
  // gelu_new(-1) = -0.15880800939172324, gelu_new(3) = 2.996362607918227.
  const Tensor y = ops::gelu_new(Tensor::from_vector<float>({5}, {1.0f, -1.0f, 3.0f, 0.0f, -20.0f}));
  EXPECT_NEAR(y.item(0), 0.8411919906082768, 1e-6);
  EXPECT_NEAR(y.item(1), -0.15880800939172324, 1e-6);
  EXPECT_NEAR(y.item(2), 2.996362607918227, 1e-6);
  EXPECT_EQ(y.item(3), 0.0);
  EXPECT_NEAR(y.item(4), 0.0, 1e-30);  // tanh saturates to -1: no NaN from the cubic

  std::mt19937 rng(42);
  // Wide inputs reach both saturated tails; a separate small range checks the region near 0.
  for (const auto& [low, high] : {std::pair{-6.0f, 6.0f}, std::pair{-0.1f, 0.1f}}) {
    const std::string label = "gelu_new [" + std::to_string(low) + ", " + std::to_string(high) + ")";
    const testing::GradCheckReport report = testing::check_op(
        label, [](const std::vector<Tensor>& in) { return ops::gelu_new(in[0]); },
        [](const DoubleInputs& in) { return map_reference(in[0], gelu_new_reference); },
        {testing::random_tensor({5, 9}, rng, low, high)}, {true});
    testing::print_report(label, report);
  }
}

TEST(Activation, GatedGelu) {
  std::mt19937 rng(43);
  auto reference = [](const DoubleInputs& in) {
    std::vector<double> out(in[0].size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = gelu_new_reference(in[0][i]) * in[1][i];
    return out;
  };
  auto op = [](const std::vector<Tensor>& in) { return ops::gated_gelu(in[0], in[1]); };
  for (const Shape& shape : {Shape{5, 9}, Shape{1, 1}, Shape{2, 3, 11}}) {
    const std::vector<Tensor> inputs = {testing::random_tensor(shape, rng, -4.0f, 4.0f),
                                        testing::random_tensor(shape, rng)};
    const std::string label = "gated_gelu " + shape_string(shape);
    testing::print_report(label, testing::check_op(label, op, reference, inputs, {true, true}));
  }
  // One side constant: the other still gets its gradient, the constant none.
  const std::vector<Tensor> inputs = {testing::random_tensor({3, 4}, rng, -4.0f, 4.0f),
                                      testing::random_tensor({3, 4}, rng)};
  testing::print_report("gated_gelu gate only", testing::check_op("gated_gelu gate only", op, reference, inputs,
                                                                  {true, false}));
  testing::print_report("gated_gelu linear only", testing::check_op("gated_gelu linear only", op, reference,
                                                                    inputs, {false, true}));
}

TEST(Activation, BadInputNamesTheOpAndShapes) {
  using testing::error_message;
  const Tensor ints = Tensor::zeros({2, 3}, DType::kI32);
  EXPECT_THAT(error_message([&] { ops::relu(ints); }), HasSubstr("relu: x must be f32 or bf16, got i32[2, 3] on cpu"));
  EXPECT_THAT(error_message([&] { ops::gelu_new(Tensor::zeros({4}, DType::kBF16)); }),
              HasSubstr("gelu_new_forward: the cpu backend computes activations in f32, got bf16"));
  EXPECT_THAT(error_message([&] { ops::gated_gelu(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})); }),
              HasSubstr("gated_gelu: shape mismatch: gate is f32[2, 3] on cpu but linear is f32[3, 2] on cpu"));
  EXPECT_THAT(error_message([&] { ops::gated_gelu(Tensor::zeros({2, 3}), ints); }),
              HasSubstr("gated_gelu: linear must be f32 or bf16, got i32[2, 3] on cpu"));
  EXPECT_THAT(error_message([&] { ops::relu(Tensor()); }), HasSubstr("relu: x is undefined"));
}

}  // namespace
}  // namespace la3
