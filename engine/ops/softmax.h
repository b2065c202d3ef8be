// Softmax over the last dimension (differentiable), max-subtracted for stability.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

Tensor softmax(const Tensor& x);

}  // namespace la3::ops
