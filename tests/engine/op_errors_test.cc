// Bad input to every op: a clear EngineError naming the op and the shapes (or the id and
// its position), with a Status code at the API boundary, and never an abort.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/ops/activation.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/dropout.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"
#include "engine/ops/rmsnorm.h"
#include "engine/ops/softmax.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const EngineError& error) {
    return error.what();
  }
  return "no error";
}

TEST(OpErrors, ShapeMismatchesNameTheOpAndBothShapes) {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  EXPECT_THAT(error_of([&] { ops::matmul(a, b); }),
              HasSubstr("matmul: inner dimensions differ (3 vs 4): a f32[2, 3] on cpu, b f32[4, 5] on cpu"));
  EXPECT_THAT(error_of([&] { ops::matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})); }),
              HasSubstr("matmul: batch dimensions differ"));
  EXPECT_THAT(error_of([&] { ops::linear(a, b); }),
              HasSubstr("linear: input f32[2, 3] on cpu does not match weight f32[4, 5] on cpu"));
  EXPECT_THAT(error_of([&] { ops::add(a, b); }), HasSubstr("add: cannot broadcast b f32[4, 5] on cpu to a f32[2, 3] on cpu"));
  EXPECT_THAT(error_of([&] { ops::mul(a, Tensor::zeros({2})); }), HasSubstr("mul: cannot broadcast b f32[2]"));
  EXPECT_THAT(error_of([&] { ops::gated_gelu(a, b); }),
              HasSubstr("gated_gelu: shape mismatch: gate is f32[2, 3] on cpu but linear is f32[4, 5] on cpu"));
  EXPECT_THAT(error_of([&] { ops::rmsnorm(a, Tensor::zeros({4})); }),
              HasSubstr("rmsnorm: weight f32[4] on cpu does not match the last dimension of x f32[2, 3] on cpu"));
  EXPECT_THAT(error_of([&] { ops::cross_entropy(a, Tensor::zeros({3}, DType::kI64)); }),
              HasSubstr("cross_entropy: labels i64[3] on cpu do not match logits f32[2, 3] on cpu (expected labels of shape [2])"));
  EXPECT_THAT(error_of([&] { ops::reshape(a, {4}); }), HasSubstr("shape [4] has 4 elements but tensor f32[2, 3] on cpu has 6"));
}

TEST(OpErrors, WrongDtypes) {
  const Tensor ints = Tensor::zeros({2, 3}, DType::kI32);
  EXPECT_THAT(error_of([&] { ops::relu(ints); }), HasSubstr("relu: x must be f32, got i32[2, 3] on cpu"));
  EXPECT_THAT(error_of([&] { ops::softmax(ints); }), HasSubstr("softmax: x must be f32"));
  EXPECT_THAT(error_of([&] { ops::matmul(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}, DType::kBF16)); }),
              HasSubstr("matmul: b must be f32, got bf16[3, 2] on cpu"));
  EXPECT_THAT(error_of([&] { ops::embedding(Tensor::zeros({4, 2}), Tensor::zeros({3})); }),
              HasSubstr("embedding: ids must be i32 or i64, got f32[3] on cpu"));
  EXPECT_THAT(error_of([&] { ops::cross_entropy(Tensor::zeros({2, 3}), Tensor::zeros({2})); }),
              HasSubstr("cross_entropy: labels must be i32 or i64"));
}

TEST(OpErrors, OutOfRangeIdsNameTheIdAndPosition) {
  const Tensor table = Tensor::zeros({10, 4});
  const std::string message = error_of([&] {
    ops::embedding(table, Tensor::from_vector<int64_t>({2, 2}, {1, 2, 10, 3}));
  });
  EXPECT_THAT(message, HasSubstr("embedding: id 10 at position 2 of ids i64[2, 2] on cpu is outside the table's vocabulary [0, 10)"));
  EXPECT_THAT(error_of([&] { ops::embedding(table, Tensor::from_vector<int32_t>({1}, {-1})); }), HasSubstr("id -1 at position 0"));
  EXPECT_THAT(error_of([&] {
                ops::cross_entropy(Tensor::zeros({3, 5}), Tensor::from_vector<int64_t>({3}, {0, -100, 5}));
              }),
              HasSubstr("cross_entropy: label 5 at position 2 of labels i64[3] on cpu is outside [0, 5) and is not ignore_index -100"));
  const absl::Status status = CaptureStatus([&] { ops::embedding(table, Tensor::from_vector<int64_t>({1}, {99})); });
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange);
}

TEST(OpErrors, BadOptions) {
  const Tensor x = Tensor::zeros({4});
  EXPECT_THAT(error_of([&] { ops::dropout(x, kernels::DropoutParams{1.0f, 0, 0, 0}, true); }),
              HasSubstr("dropout: probability must be in [0, 1), got 1"));
  EXPECT_THAT(error_of([&] { ops::dropout(x, kernels::DropoutParams{-0.1f, 0, 0, 0}, false); }),
              HasSubstr("dropout: probability must be in [0, 1)"));
  EXPECT_THAT(error_of([&] { ops::rmsnorm(Tensor::zeros({2, 4}), x, 0.0f); }), HasSubstr("rmsnorm: eps must be positive"));
}

TEST(OpErrors, DropoutIsIdentityWhenNotTrainingAndKeepsAboutOneMinusP) {
  const Tensor x = Tensor::full({100000}, 1.0);
  EXPECT_TRUE(ops::dropout(x, kernels::DropoutParams{0.3f, 1, 1, 1}, false).same(x));
  EXPECT_TRUE(ops::dropout(x, kernels::DropoutParams{0.0f, 1, 1, 1}, true).same(x));
  const std::vector<float> y = ops::dropout(x, kernels::DropoutParams{0.3f, 1, 1, 1}, true).to_vector<float>();
  int64_t kept = 0;
  for (float v : y) {
    if (v != 0.0f) {
      ++kept;
      ASSERT_FLOAT_EQ(v, 1.0f / 0.7f);
    }
  }
  // Binomial(100000, 0.7): sd = 145; allow 4 sd.
  EXPECT_NEAR(static_cast<double>(kept), 70000.0, 4 * 145.0);
}

}  // namespace
}  // namespace la3
