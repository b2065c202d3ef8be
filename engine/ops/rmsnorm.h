// T5 layer norm (differentiable): RMS normalisation with a learned scale, no mean
// subtraction and no bias, statistics in fp32, as transformers' T5LayerNorm.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// x [..., d], weight [d] -> x * rsqrt(mean(x^2 over d) + eps) * weight.
// x may be f32 or bf16 (the output and x's gradient have x's dtype; weight and its gradient
// are f32, statistics fp32).
Tensor rmsnorm(const Tensor& x, const Tensor& weight, float eps = 1e-6f);

// The residual add and the pre-norm that follows it, in one kernel pass:
//   sum = residual + branch;  normed = rmsnorm(sum, weight, eps).
// Values and gradients are those of ops::add followed by ops::rmsnorm (bit-identical on the
// CPU); it saves the GPU two reads and a write of the row. residual and branch have the same
// shape and dtype (f32 or bf16: with bf16 the sum is rounded to bf16 before it is normalised).
struct AddRmsNorm {
  Tensor sum;
  Tensor normed;
};
AddRmsNorm add_rmsnorm(const Tensor& residual, const Tensor& branch, const Tensor& weight, float eps = 1e-6f);

}  // namespace la3::ops
