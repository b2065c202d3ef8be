// T5 layer norm (differentiable): RMS normalisation with a learned scale, no mean
// subtraction and no bias, statistics in fp32, as transformers' T5LayerNorm.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// x [..., d], weight [d] -> x * rsqrt(mean(x^2 over d) + eps) * weight.
Tensor rmsnorm(const Tensor& x, const Tensor& weight, float eps = 1e-6f);

}  // namespace la3::ops
