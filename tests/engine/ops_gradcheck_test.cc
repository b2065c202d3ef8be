// Every op except attention (attention_op_test.cc) against a direct double-precision
// reference (forward) and central finite differences of it (backward), with sizes that are
// not multiples of any block size, length-1 rows and masked/ignored rows.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/ops/activation.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/dropout.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"
#include "engine/ops/rmsnorm.h"
#include "engine/ops/softmax.h"
#include "kernels/philox.cuh"
#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

using testing::DoubleInputs;

// Row-major op(X) element (r, c) of a stored rows x cols matrix.
double at(const std::vector<double>& x, int64_t offset, int64_t cols, bool trans, int64_t r, int64_t c) {
  return trans ? x[static_cast<size_t>(offset + c * cols + r)] : x[static_cast<size_t>(offset + r * cols + c)];
}

struct MatmulCase {
  Shape a, b;
  ops::MatmulOptions options;
};

void check_matmul(const MatmulCase& c) {
  std::mt19937 rng(21);
  const std::vector<Tensor> inputs = {testing::random_tensor(c.a, rng), testing::random_tensor(c.b, rng)};
  const bool ta = c.options.trans_a, tb = c.options.trans_b;
  const int64_t a_rows = c.a[c.a.size() - 2], a_cols = c.a.back();
  const int64_t b_rows = c.b[c.b.size() - 2], b_cols = c.b.back();
  const int64_t m = ta ? a_cols : a_rows, k = ta ? a_rows : a_cols, n = tb ? b_rows : b_cols;
  const int64_t batch = shape_numel(Shape(c.a.begin(), c.a.end() - 2));
  const bool shared = c.b.size() == 2;
  auto reference = [&](const DoubleInputs& x) {
    std::vector<double> out(static_cast<size_t>(batch * m * n), 0.0);
    for (int64_t item = 0; item < batch; ++item) {
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t col = 0; col < n; ++col) {
          double sum = 0.0;
          for (int64_t i = 0; i < k; ++i) {
            sum += at(x[0], item * a_rows * a_cols, a_cols, ta, r, i) *
                   at(x[1], shared ? 0 : item * b_rows * b_cols, b_cols, tb, i, col);
          }
          out[static_cast<size_t>((item * m + r) * n + col)] = c.options.alpha * sum;
        }
      }
    }
    return out;
  };
  testing::check_op("matmul", [&](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1], c.options); },
                    reference, inputs, {true, true});
}

TEST(OpsGradcheck, MatmulAllTransposesBatchedAndShared) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const ops::MatmulOptions o{ta, tb, 0.75f};
      const Shape a2 = ta ? Shape{3, 5} : Shape{5, 3};
      const Shape b2 = tb ? Shape{7, 3} : Shape{3, 7};
      check_matmul({a2, b2, o});                                          // plain 2-D
      check_matmul({ta ? Shape{2, 3, 3, 5} : Shape{2, 3, 5, 3}, tb ? Shape{2, 3, 7, 3} : Shape{2, 3, 3, 7}, o});  // batched
      check_matmul({ta ? Shape{4, 3, 5} : Shape{4, 5, 3}, b2, o});       // b shared by the batch
    }
  }
  check_matmul({{1, 1}, {1, 1}, {}});
}

TEST(OpsGradcheck, LinearOfRank1To3Inputs) {
  std::mt19937 rng(22);
  for (const Shape& x_shape : {Shape{6}, Shape{4, 6}, Shape{2, 3, 6}}) {
    const std::vector<Tensor> inputs = {testing::random_tensor(x_shape, rng), testing::random_tensor({5, 6}, rng)};
    const int64_t rows = shape_numel(x_shape) / 6;
    auto reference = [&](const DoubleInputs& x) {
      std::vector<double> out(static_cast<size_t>(rows * 5));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t o = 0; o < 5; ++o) {
          double sum = 0.0;
          for (int64_t i = 0; i < 6; ++i) sum += x[0][static_cast<size_t>(r * 6 + i)] * x[1][static_cast<size_t>(o * 6 + i)];
          out[static_cast<size_t>(r * 5 + o)] = sum;
        }
      }
      return out;
    };
    testing::check_op("linear", [](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1]); }, reference,
                      inputs, {true, true});
  }
}

TEST(OpsGradcheck, MatmulWithAnEmptyDimension) {
  const Tensor out = ops::matmul(Tensor::zeros({4, 0}), Tensor::zeros({0, 3}));
  EXPECT_EQ(out.shape(), (Shape{4, 3}));
  for (float value : out.to_vector<float>()) EXPECT_EQ(value, 0.0f);
}

TEST(OpsGradcheck, AddMulWithSameShapeAndSuffixBroadcast) {
  std::mt19937 rng(23);
  for (const Shape& b_shape : {Shape{2, 3, 5}, Shape{3, 5}, Shape{5}}) {
    const std::vector<Tensor> inputs = {testing::random_tensor({2, 3, 5}, rng), testing::random_tensor(b_shape, rng)};
    const size_t period = static_cast<size_t>(shape_numel(b_shape));
    for (bool multiply : {false, true}) {
      auto reference = [&](const DoubleInputs& x) {
        std::vector<double> out(x[0].size());
        for (size_t i = 0; i < out.size(); ++i) out[i] = multiply ? x[0][i] * x[1][i % period] : x[0][i] + x[1][i % period];
        return out;
      };
      testing::check_op(multiply ? "mul" : "add",
                        [&](const std::vector<Tensor>& x) { return multiply ? ops::mul(x[0], x[1]) : ops::add(x[0], x[1]); },
                        reference, inputs, {true, true});
    }
  }
}

TEST(OpsGradcheck, ScaleAndReshape) {
  std::mt19937 rng(24);
  const std::vector<Tensor> inputs = {testing::random_tensor({3, 4}, rng)};
  testing::check_op(
      "scale+reshape",
      [](const std::vector<Tensor>& x) { return ops::reshape(ops::scale(x[0], -1.5f), {2, 6}); },
      [](const DoubleInputs& x) {
        std::vector<double> out(x[0].size());
        for (size_t i = 0; i < out.size(); ++i) out[i] = -1.5 * x[0][i];
        return out;
      },
      inputs, {true});
}

double gelu_new_reference(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

TEST(OpsGradcheck, Activations) {
  std::mt19937 rng(25);
  // relu: inputs kept at least 0.05 from the kink so finite differences are exact.
  Tensor relu_input = testing::random_tensor({3, 7}, rng, 0.05f, 1.0f);
  float* values = relu_input.data<float>();
  for (int64_t i = 0; i < relu_input.numel(); i += 2) values[i] = -values[i];
  testing::check_op("relu", [](const std::vector<Tensor>& x) { return ops::relu(x[0]); },
                    [](const DoubleInputs& x) {
                      std::vector<double> out(x[0].size());
                      for (size_t i = 0; i < out.size(); ++i) out[i] = std::max(0.0, x[0][i]);
                      return out;
                    },
                    {relu_input}, {true});
  const Tensor wide = testing::random_tensor({5, 9}, rng, -4.0f, 4.0f);
  testing::check_op("gelu_new", [](const std::vector<Tensor>& x) { return ops::gelu_new(x[0]); },
                    [](const DoubleInputs& x) {
                      std::vector<double> out(x[0].size());
                      for (size_t i = 0; i < out.size(); ++i) out[i] = gelu_new_reference(x[0][i]);
                      return out;
                    },
                    {wide}, {true});
  testing::check_op("gated_gelu", [](const std::vector<Tensor>& x) { return ops::gated_gelu(x[0], x[1]); },
                    [](const DoubleInputs& x) {
                      std::vector<double> out(x[0].size());
                      for (size_t i = 0; i < out.size(); ++i) out[i] = gelu_new_reference(x[0][i]) * x[1][i];
                      return out;
                    },
                    {wide, testing::random_tensor({5, 9}, rng)}, {true, true});
}

TEST(OpsGradcheck, RmsNormOddWidthsAndNearZeroRows) {
  std::mt19937 rng(26);
  // (A width-1 row is left out: its gradient is eps / (x^2 + eps)^1.5, pure cancellation in fp32.)
  for (const Shape& shape : {Shape{4, 13}, Shape{1, 5}, Shape{2, 3, 7}}) {
    Tensor x = testing::random_tensor(shape, rng, -2.0f, 2.0f);
    if (shape[0] == 4) {  // row 1: all zero but one entry
      float* row = x.data<float>() + 13;
      for (int i = 0; i < 13; ++i) row[i] = i == 4 ? 0.3f : 0.0f;
    }
    const int64_t cols = shape.back();
    const float eps = 1e-6f;
    auto reference = [&](const DoubleInputs& in) {
      std::vector<double> out(in[0].size());
      for (size_t r = 0; r < out.size() / static_cast<size_t>(cols); ++r) {
        double mean_square = 0.0;
        for (int64_t c = 0; c < cols; ++c) mean_square += in[0][r * cols + c] * in[0][r * cols + c];
        mean_square /= static_cast<double>(cols);
        const double inv = 1.0 / std::sqrt(mean_square + eps);
        for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = in[0][r * cols + c] * inv * in[1][static_cast<size_t>(c)];
      }
      return out;
    };
    testing::check_op("rmsnorm", [&](const std::vector<Tensor>& in) { return ops::rmsnorm(in[0], in[1], eps); },
                      reference, {x, testing::random_tensor({cols}, rng, 0.5f, 1.5f)}, {true, true});
  }
  // eps is honoured: an all-zero row normalises to 0 without NaN, and a tiny row is damped.
  const Tensor zero_row = ops::rmsnorm(Tensor::zeros({1, 4}), Tensor::full({4}, 1.0), 1e-6f);
  for (float v : zero_row.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  const Tensor tiny = ops::rmsnorm(Tensor::full({1, 4}, 1e-3), Tensor::full({4}, 1.0), 1e-2f);
  EXPECT_NEAR(tiny.item(0), 1e-3 / std::sqrt(1e-6 + 1e-2), 1e-7);
}

TEST(OpsGradcheck, SoftmaxIncludingLargeLogitsAndLengthOneRows) {
  std::mt19937 rng(27);
  for (const Shape& shape : {Shape{3, 11}, Shape{4, 1}}) {
    const int64_t cols = shape.back();
    testing::check_op("softmax", [](const std::vector<Tensor>& x) { return ops::softmax(x[0]); },
                      [&](const DoubleInputs& x) {
                        std::vector<double> out(x[0].size());
                        for (size_t r = 0; r < out.size() / static_cast<size_t>(cols); ++r) {
                          double max_value = -INFINITY, sum = 0.0;
                          for (int64_t c = 0; c < cols; ++c) max_value = std::max(max_value, x[0][r * cols + c]);
                          for (int64_t c = 0; c < cols; ++c) sum += std::exp(x[0][r * cols + c] - max_value);
                          for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = std::exp(x[0][r * cols + c] - max_value) / sum;
                        }
                        return out;
                      },
                      {testing::random_tensor(shape, rng, -3.0f, 3.0f)}, {true});
  }
  const std::vector<float> big = ops::softmax(Tensor::from_vector<float>({1, 3}, {1000.0f, 1000.0f, -1000.0f})).to_vector<float>();
  EXPECT_FLOAT_EQ(big[0], 0.5f);
  EXPECT_FLOAT_EQ(big[1], 0.5f);
  EXPECT_EQ(big[2], 0.0f);
}

TEST(OpsGradcheck, EmbeddingAccumulatesRepeatedIds) {
  std::mt19937 rng(28);
  const std::vector<int64_t> ids = {3, 0, 3, 6, 3, 1};
  for (DType id_type : {DType::kI64, DType::kI32}) {
    const Tensor id_tensor = Tensor::from_vector<int64_t>({2, 3}, ids).to(id_type);
    testing::check_op("embedding", [&](const std::vector<Tensor>& x) { return ops::embedding(x[0], id_tensor); },
                      [&](const DoubleInputs& x) {
                        std::vector<double> out;
                        for (int64_t id : ids) {
                          for (int64_t c = 0; c < 5; ++c) out.push_back(x[0][static_cast<size_t>(id * 5 + c)]);
                        }
                        return out;
                      },
                      {testing::random_tensor({7, 5}, rng)}, {true});
  }
}

TEST(OpsGradcheck, DropoutMatchesPhiloxMaskInForwardAndBackward) {
  std::mt19937 rng(29);
  const kernels::DropoutParams params{0.25f, 99, 4, 17};
  testing::check_op("dropout", [&](const std::vector<Tensor>& x) { return ops::dropout(x[0], params, true); },
                    [&](const DoubleInputs& x) {
                      std::vector<double> out(x[0].size());
                      for (size_t i = 0; i < out.size(); ++i) {
                        out[i] = kernels::dropout_keep(params.p, params.seed, params.step, params.stream, i) ? x[0][i] / 0.75 : 0.0;
                      }
                      return out;
                    },
                    {testing::random_tensor({6, 7}, rng)}, {true});
}

TEST(OpsGradcheck, CrossEntropyMeanAndSumWithIgnoredRows) {
  std::mt19937 rng(30);
  const std::vector<int64_t> labels = {2, -100, 0, 6, -100, 4};
  const Tensor label_tensor = Tensor::from_vector<int64_t>({2, 3}, labels);
  for (ops::Reduction reduction : {ops::Reduction::kMean, ops::Reduction::kSum}) {
    ops::CrossEntropyOptions options;
    options.reduction = reduction;
    testing::check_op(
        "cross_entropy",
        [&](const std::vector<Tensor>& x) { return ops::cross_entropy(x[0], label_tensor, options); },
        [&](const DoubleInputs& x) {
          double total = 0.0;
          int counted = 0;
          for (size_t r = 0; r < labels.size(); ++r) {
            if (labels[r] == -100) continue;
            double max_value = -INFINITY, sum = 0.0;
            for (size_t c = 0; c < 7; ++c) max_value = std::max(max_value, x[0][r * 7 + c]);
            for (size_t c = 0; c < 7; ++c) sum += std::exp(x[0][r * 7 + c] - max_value);
            total += max_value + std::log(sum) - x[0][r * 7 + static_cast<size_t>(labels[r])];
            ++counted;
          }
          return std::vector<double>{reduction == ops::Reduction::kMean ? total / counted : total};
        },
        {testing::random_tensor({2, 3, 7}, rng, -3.0f, 3.0f)}, {true});
  }
}

}  // namespace
}  // namespace la3
