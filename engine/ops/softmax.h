// Softmax over the last dimension (differentiable), max-subtracted for stability. x is f32 or
// bf16 (on the CUDA devices): the probabilities and dx have x's type, the row maximum and
// sums are fp32.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

Tensor softmax(const Tensor& x);

}  // namespace la3::ops
