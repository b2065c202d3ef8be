// Test support: compare an op with a direct double-precision reference, forward and
// backward (ggml test-backend-ops style).
//
// Forward: the op's f32 output against the reference evaluated in double.
// Backward: the op's gradients (through the autograd tape, for a random upstream gradient g)
// against central finite differences of L(x) = sum(g * reference(x)) computed in double.
// Both use the normalised error mse(actual, expected) / mse(expected, 0).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace la3::testing {

// Values of every input tensor, as doubles in row-major order.
using DoubleInputs = std::vector<std::vector<double>>;
// The op under test, on tensors.
using TensorFn = std::function<Tensor(const std::vector<Tensor>& inputs)>;
// The same function written directly in double precision; returns the output row-major.
using ReferenceFn = std::function<std::vector<double>(const DoubleInputs& inputs)>;

// mse(actual, expected) / mse(expected, 0); the plain mse when expected is all zero.
double normalized_error(const std::vector<double>& actual, const std::vector<double>& expected);

std::vector<double> to_doubles(const Tensor& tensor);

// The same measure for raw f32 buffers (kernel tests) and for tensors.
double normalized_error(const std::vector<float>& actual, const std::vector<float>& expected);
double normalized_error(const Tensor& actual, const Tensor& expected);

// f32 tensor with uniform values in [low, high).
Tensor random_tensor(const Shape& shape, std::mt19937& rng, float low = -1.0f, float high = 1.0f);

struct GradCheckOptions {
  double forward_tolerance = 1e-10;   // normalised error bound, forward
  double backward_tolerance = 1e-8;   // normalised error bound, each gradient
  double step = 1e-3;                 // finite-difference step (double precision)
  uint32_t seed = 1234;               // upstream gradient
};

struct GradCheckReport {
  double forward_error = 0.0;
  std::vector<double> gradient_errors;  // one per input checked (-1 for inputs not checked)
};

// Runs the forward and backward comparison. `differentiable[i]` says whether inputs[i] gets
// a gradient check (integer inputs never do). Records gtest failures that name the input.
GradCheckReport check_op(const std::string& name, const TensorFn& op, const ReferenceFn& reference,
                         const std::vector<Tensor>& inputs, const std::vector<bool>& differentiable,
                         const GradCheckOptions& options = {});

}  // namespace la3::testing
