#include "tests/support/gradcheck.h"

#include <gtest/gtest.h>

#include "engine/autograd/tape.h"

namespace la3::testing {

double normalized_error(const std::vector<double>& actual, const std::vector<double>& expected) {
  EXPECT_EQ(actual.size(), expected.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < actual.size() && i < expected.size(); ++i) {
    diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
    norm += expected[i] * expected[i];
  }
  if (actual.empty()) return 0.0;
  return norm == 0.0 ? diff / static_cast<double>(actual.size()) : diff / norm;
}

double normalized_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  return normalized_error(std::vector<double>(actual.begin(), actual.end()),
                          std::vector<double>(expected.begin(), expected.end()));
}

double normalized_error(const Tensor& actual, const Tensor& expected) {
  return normalized_error(to_doubles(actual), to_doubles(expected));
}

std::vector<double> to_doubles(const Tensor& tensor) {
  std::vector<double> values(static_cast<size_t>(tensor.numel()));
  for (int64_t i = 0; i < tensor.numel(); ++i) values[static_cast<size_t>(i)] = tensor.item(i);
  return values;
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng, float low, float high) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
  for (float& v : values) v = dist(rng);
  return Tensor::from_vector<float>(shape, values);
}

GradCheckReport check_op(const std::string& name, const TensorFn& op, const ReferenceFn& reference,
                         const std::vector<Tensor>& inputs, const std::vector<bool>& differentiable,
                         const GradCheckOptions& options) {
  GradCheckReport report;
  EXPECT_EQ(inputs.size(), differentiable.size()) << name;
  // Fresh leaves so earlier tests cannot leave gradients behind.
  std::vector<Tensor> leaves;
  DoubleInputs reference_inputs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor leaf = inputs[i].clone();
    if (differentiable[i]) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
    reference_inputs.push_back(to_doubles(inputs[i]));
  }

  Tape tape;
  const Tensor output = op(leaves);
  const std::vector<double> expected = reference(reference_inputs);
  report.forward_error = normalized_error(to_doubles(output), expected);
  EXPECT_LE(report.forward_error, options.forward_tolerance) << name << ": forward";

  bool any_differentiable = false;
  for (bool d : differentiable) any_differentiable |= d;
  report.gradient_errors.assign(inputs.size(), -1.0);
  if (!any_differentiable) return report;

  std::mt19937 rng(options.seed);
  const Tensor upstream = random_tensor(output.shape(), rng);
  const std::vector<double> g = to_doubles(upstream);
  tape.backward(output, upstream);

  auto loss = [&](const DoubleInputs& x) {
    const std::vector<double> y = reference(x);
    double total = 0.0;
    for (size_t j = 0; j < y.size(); ++j) total += g[j] * y[j];
    return total;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!differentiable[i]) continue;
    std::vector<double> numeric(reference_inputs[i].size());
    DoubleInputs x = reference_inputs;
    for (size_t e = 0; e < numeric.size(); ++e) {
      const double original = x[i][e];
      x[i][e] = original + options.step;
      const double plus = loss(x);
      x[i][e] = original - options.step;
      const double minus = loss(x);
      x[i][e] = original;
      numeric[e] = (plus - minus) / (2.0 * options.step);
    }
    const Tensor grad = leaves[i].grad();
    if (!grad.defined()) {
      ADD_FAILURE() << name << ": input " << i << " got no gradient";
      continue;
    }
    report.gradient_errors[i] = normalized_error(to_doubles(grad), numeric);
    EXPECT_LE(report.gradient_errors[i], options.backward_tolerance) << name << ": gradient of input " << i;
  }
  return report;
}

}  // namespace la3::testing
