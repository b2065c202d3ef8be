// Differentiable reshape: a view when the input is contiguous, a copy otherwise.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// Same elements in row-major order, new shape (one extent may be -1).
Tensor reshape(const Tensor& x, Shape shape);

}  // namespace la3::ops
