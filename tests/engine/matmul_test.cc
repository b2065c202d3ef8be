// matmul and linear against a direct double-precision product (forward) and central finite
// differences of it (backward): 2-D, batched, one 2-D b shared by the batch, all four
// transpose combinations, sizes that are not multiples of anything (M, N, K = 5, 7, 3),
// length-1 and zero-size dimensions, strided inputs, and bad input.
#include "engine/ops/matmul.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "engine/autograd/tape.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::DoubleInputs;

// Element (row, col) of op(X) where X is a stored rows x cols matrix starting at `offset`
// of `values` and op transposes when `transposed`.
double element(const std::vector<double>& values, int64_t offset, int64_t stored_cols, bool transposed, int64_t row,
               int64_t col) {
  const int64_t index = transposed ? offset + col * stored_cols + row : offset + row * stored_cols + col;
  return values[static_cast<size_t>(index)];
}

// out[item] = alpha * op(a[item]) op(b[item or shared]) in double; shapes as matmul takes them.
std::vector<double> matmul_reference(const DoubleInputs& in, const Shape& a_shape, const Shape& b_shape,
                                     const ops::MatmulOptions& options) {
  const int64_t a_rows = a_shape[a_shape.size() - 2], a_cols = a_shape.back();
  const int64_t b_rows = b_shape[b_shape.size() - 2], b_cols = b_shape.back();
  const int64_t m = options.trans_a ? a_cols : a_rows;
  const int64_t k = options.trans_a ? a_rows : a_cols;
  const int64_t n = options.trans_b ? b_rows : b_cols;
  const int64_t batch = shape_numel(Shape(a_shape.begin(), a_shape.end() - 2));
  const bool b_shared = b_shape.size() == 2 && a_shape.size() > 2;
  std::vector<double> out(static_cast<size_t>(batch * m * n), 0.0);
  for (int64_t item = 0; item < batch; ++item) {
    const int64_t a_offset = item * a_rows * a_cols;
    const int64_t b_offset = b_shared ? 0 : item * b_rows * b_cols;
    for (int64_t row = 0; row < m; ++row) {
      for (int64_t col = 0; col < n; ++col) {
        double sum = 0.0;
        for (int64_t inner = 0; inner < k; ++inner) {
          sum += element(in[0], a_offset, a_cols, options.trans_a, row, inner) *
                 element(in[1], b_offset, b_cols, options.trans_b, inner, col);
        }
        out[static_cast<size_t>((item * m + row) * n + col)] = options.alpha * sum;
      }
    }
  }
  return out;
}

// Shape of a stored operand whose op() is rows x cols, with leading dimensions `lead`.
Shape stored_shape(Shape lead, int64_t rows, int64_t cols, bool transposed) {
  lead.push_back(transposed ? cols : rows);
  lead.push_back(transposed ? rows : cols);
  return lead;
}

testing::GradCheckReport check_matmul(const std::string& label, const Shape& a_shape, const Shape& b_shape,
                                      const ops::MatmulOptions& options, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<Tensor> inputs = {testing::random_tensor(a_shape, rng), testing::random_tensor(b_shape, rng)};
  const testing::GradCheckReport report = testing::check_op(
      label, [&](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1], options); },
      [&](const DoubleInputs& x) { return matmul_reference(x, a_shape, b_shape, options); }, inputs,
      {true, true});
  testing::print_report(label, report);
  return report;
}

std::string transpose_label(bool trans_a, bool trans_b) {
  return std::string(trans_a ? "T" : "N") + (trans_b ? "T" : "N");
}

TEST(Matmul, TwoDimensionalAllTransposes) {
  // M, N, K = 5, 7, 3: no common factor, nothing a block size divides.
  const int64_t m = 5, n = 7, k = 3;
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      for (float alpha : {1.0f, -0.75f}) {
        const ops::MatmulOptions options{trans_a, trans_b, alpha};
        check_matmul("matmul 2d " + transpose_label(trans_a, trans_b) + (alpha == 1.0f ? "" : " alpha"),
                     stored_shape({}, m, k, trans_a), stored_shape({}, k, n, trans_b), options, 11);
      }
    }
  }
}

TEST(Matmul, BatchedAllTransposes) {
  const int64_t m = 5, n = 7, k = 3;
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      const ops::MatmulOptions options{trans_a, trans_b, 1.0f};
      check_matmul("matmul batched [2,3] " + transpose_label(trans_a, trans_b), stored_shape({2, 3}, m, k, trans_a),
                   stored_shape({2, 3}, k, n, trans_b), options, 12);
    }
  }
}

TEST(Matmul, SharedTwoDimensionalBAllTransposes) {
  // b [K, N] (or [N, K]) serves every batch item; its gradient is the sum over the batch.
  const int64_t m = 5, n = 7, k = 3;
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      const ops::MatmulOptions options{trans_a, trans_b, 0.5f};
      check_matmul("matmul shared b " + transpose_label(trans_a, trans_b), stored_shape({4}, m, k, trans_a),
                   stored_shape({}, k, n, trans_b), options, 13);
      check_matmul("matmul shared b, 2 lead dims " + transpose_label(trans_a, trans_b),
                   stored_shape({2, 3}, m, k, trans_a), stored_shape({}, k, n, trans_b), options, 14);
    }
  }
}

TEST(Matmul, LengthOneDimensions) {
  check_matmul("matmul 1x1x1", {1, 1}, {1, 1}, {}, 15);
  check_matmul("matmul M=1", {1, 3}, {3, 7}, {}, 16);
  check_matmul("matmul N=1", {5, 3}, {3, 1}, {}, 17);
  check_matmul("matmul K=1", {5, 1}, {1, 7}, {}, 18);
  check_matmul("matmul batch 1", {1, 5, 3}, {1, 3, 7}, {}, 19);
  check_matmul("matmul shared b, batch 1 NT", {1, 5, 3}, {7, 3}, {false, true, 1.0f}, 20);
}

TEST(Matmul, RandomShapes) {
  // Sizes drawn from 1..13 (never all multiples of anything) in every layout.
  std::mt19937 shape_rng(2024);
  std::uniform_int_distribution<int64_t> extent(1, 13);
  for (int trial = 0; trial < 6; ++trial) {
    const bool trans_a = (trial & 1) != 0, trans_b = (trial & 2) != 0;
    const int64_t m = extent(shape_rng), n = extent(shape_rng), k = extent(shape_rng);
    const Shape lead = trial < 4 ? Shape{extent(shape_rng) % 3 + 1} : Shape{};
    const bool shared = trial % 3 == 0 && !lead.empty();
    check_matmul("matmul random " + std::to_string(trial), stored_shape(lead, m, k, trans_a),
                 stored_shape(shared ? Shape{} : lead, k, n, trans_b), {trans_a, trans_b, 1.0f},
                 100 + static_cast<uint32_t>(trial));
  }
}

TEST(Matmul, ZeroSizeDimensions) {
  // K = 0: every entry is an empty sum, exactly zero (the CPU backend makes this explicit
  // rather than trusting BLAS's handling of k = 0).
  const Tensor empty_inner = ops::matmul(Tensor::full({4, 0}, 1.0), Tensor::full({0, 3}, 1.0));
  EXPECT_EQ(empty_inner.shape(), (Shape{4, 3}));
  EXPECT_EQ(empty_inner.to_vector<float>(), std::vector<float>(12, 0.0f));

  // Gradients through empty dimensions: an input that the output does not depend on gets a
  // zero gradient, never uninitialised memory.
  check_matmul("matmul K=0", {4, 0}, {0, 3}, {}, 21);
  check_matmul("matmul M=0", {0, 5}, {5, 3}, {}, 22);
  check_matmul("matmul N=0", {4, 5}, {5, 0}, {}, 23);
  check_matmul("matmul batch 0, shared b", {0, 4, 5}, {5, 3}, {}, 24);
  check_matmul("matmul batch 0, shared b, trans_a", {0, 5, 4}, {5, 3}, {true, false, 1.0f}, 25);
  check_matmul("matmul batch 0", {0, 4, 5}, {0, 5, 3}, {}, 26);
  // The same, spelled out: b's gradient from an empty batch of rows is exactly zero.
  Tape tape;
  const Tensor no_rows = Tensor::zeros({0, 5});
  const Tensor weight = Tensor::full({5, 3}, 2.0);
  weight.set_requires_grad(true);
  tape.backward(ops::matmul(no_rows, weight), Tensor::zeros({0, 3}));
  ASSERT_TRUE(weight.grad().defined());
  EXPECT_EQ(weight.grad().to_vector<float>(), std::vector<float>(15, 0.0f));
}

TEST(Matmul, StridedOperandsAreReadThroughTheirStrides) {
  // a is columns 1..3 of a 5x6 matrix and b rows 2..4 of a 6x7 one: narrowed views whose
  // storage holds other values around them.
  std::mt19937 rng(27);
  const Tensor a_full = testing::random_tensor({5, 6}, rng);
  const Tensor b_full = testing::random_tensor({6, 7}, rng);
  const Tensor a = a_full.narrow(1, 1, 3);
  const Tensor b = b_full.narrow(0, 2, 3);
  ASSERT_FALSE(a.is_contiguous());
  const std::vector<double> expected =
      matmul_reference({testing::to_doubles(a), testing::to_doubles(b)}, {5, 3}, {3, 7}, {});
  const double error = testing::normalized_error(testing::to_doubles(ops::matmul(a, b)), expected);
  EXPECT_LE(error, 1e-12);
}

TEST(Linear, InputsOfRankOneToThree) {
  // weight [out, in] = [5, 7], the Hugging Face layout; in = 7, out = 5.
  std::mt19937 rng(28);
  for (const Shape& x_shape : {Shape{7}, Shape{3, 7}, Shape{2, 3, 7}, Shape{1, 1, 7}}) {
    const int64_t rows = shape_numel(x_shape) / 7;
    auto reference = [rows](const DoubleInputs& in) {
      std::vector<double> out(static_cast<size_t>(rows * 5));
      for (int64_t row = 0; row < rows; ++row) {
        for (int64_t o = 0; o < 5; ++o) {
          double sum = 0.0;
          for (int64_t i = 0; i < 7; ++i) {
            sum += in[0][static_cast<size_t>(row * 7 + i)] * in[1][static_cast<size_t>(o * 7 + i)];
          }
          out[static_cast<size_t>(row * 5 + o)] = sum;
        }
      }
      return out;
    };
    const std::string label = "linear x" + shape_string(x_shape);
    const testing::GradCheckReport report = testing::check_op(
        label, [](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1]); }, reference,
        {testing::random_tensor(x_shape, rng), testing::random_tensor({5, 7}, rng)}, {true, true});
    testing::print_report(label, report);
    Shape out_shape = x_shape;
    out_shape.back() = 5;
    EXPECT_EQ(ops::linear(testing::random_tensor(x_shape, rng), Tensor::zeros({5, 7})).shape(), out_shape);
  }
}

TEST(Matmul, BadInputNamesTheOpAndBothShapes) {
  using testing::error_message;
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  EXPECT_THAT(error_message([&] { ops::matmul(a, b); }),
              HasSubstr("matmul: inner dimensions differ (3 vs 4): a f32[2, 3] on cpu, b f32[4, 5] on cpu"));
  // With trans_b the inner dimension of b is its last one, and the message says so.
  EXPECT_THAT(error_message([&] { ops::matmul(a, Tensor::zeros({3, 4}), {false, true, 1.0f}); }),
              AllOf(HasSubstr("inner dimensions differ (3 vs 4)"), HasSubstr("b f32[3, 4] on cpu (transposed)")));
  EXPECT_THAT(error_message([&] { ops::matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})); }),
              AllOf(HasSubstr("matmul: batch dimensions differ"), HasSubstr("f32[2, 2, 3]"), HasSubstr("f32[3, 3, 4]")));
  // A 2-D a cannot take a batched b (only b may be shared).
  EXPECT_THAT(error_message([&] { ops::matmul(Tensor::zeros({2, 3}), Tensor::zeros({2, 3, 4})); }),
              HasSubstr("matmul: batch dimensions differ"));
  EXPECT_THAT(error_message([&] { ops::matmul(Tensor::zeros({3}), Tensor::zeros({3, 4})); }),
              AllOf(HasSubstr("matmul: both operands need at least 2 dimensions"), HasSubstr("f32[3] on cpu"),
                    HasSubstr("f32[3, 4] on cpu")));
  EXPECT_THAT(error_message([&] { ops::matmul(a, Tensor::zeros({3, 2}, DType::kI32)); }),
              HasSubstr("matmul: b must be f32 or bf16, got i32[3, 2] on cpu"));
  EXPECT_THAT(error_message([&] { ops::matmul(Tensor(), a); }), HasSubstr("matmul: a is undefined"));
  EXPECT_THAT(error_message([&] { ops::linear(a, b); }),
              HasSubstr("linear: input f32[2, 3] on cpu does not match weight f32[4, 5] on cpu"));
  EXPECT_THAT(error_message([&] { ops::linear(a, Tensor::zeros({2, 4, 3})); }),
              HasSubstr("linear: weight must have 2 dimensions, got f32[2, 4, 3] on cpu"));
  EXPECT_THAT(error_message([&] { ops::linear(Tensor::zeros({2, 3}, DType::kI64), Tensor::zeros({4, 3})); }),
              HasSubstr("linear: x must be f32 or bf16, got i64[2, 3] on cpu"));
  const testing::CaughtError caught = testing::catch_error([&] { ops::matmul(a, b); });
  EXPECT_TRUE(caught.engine_error);
  EXPECT_EQ(caught.kind, ErrorKind::kInvalidArgument);
}

// bf16 activations are a feature of the CUDA devices: the CPU's GEMM refuses a bf16 operand by
// name (tests/simt/bf16_gemm_loss_test.cc runs them on cuda-emu).
TEST(Matmul, CpuRefusesBf16OperandsNamingTheGemmAndTheOperand) {
  const Tensor x = Tensor::zeros({2, 3}, DType::kBF16), weight = Tensor::zeros({4, 3});
  const testing::CaughtError linear = testing::catch_error([&] { ops::linear(x, weight); });
  EXPECT_EQ(linear.kind, ErrorKind::kUnimplemented);
  EXPECT_THAT(linear.message, HasSubstr("gemm: the cpu backend takes f32 operands, got A of type bf16"));
  EXPECT_THAT(testing::error_message([&] { ops::matmul(Tensor::zeros({2, 3}), Tensor::zeros({3, 2}, DType::kBF16)); }),
              HasSubstr("gemm: the cpu backend takes f32 operands, got B of type bf16"));
}

}  // namespace
}  // namespace la3
