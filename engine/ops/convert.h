// Differentiable element-type conversion (torch's x.to(dtype)): f32 <-> bf16 on any device.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// x converted to `dtype` (round to nearest even towards bf16). The gradient flows back
// converted to x's type. x itself (the same handle) when it already has that type.
Tensor convert(const Tensor& x, DType dtype);

}  // namespace la3::ops
