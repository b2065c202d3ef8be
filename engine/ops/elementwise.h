// Elementwise arithmetic (differentiable).
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// a + b. b has a's shape, or a suffix of it (broadcast over a's leading dimensions,
// e.g. a [batch, len, d] + b [d]).
Tensor add(const Tensor& a, const Tensor& b);

// a * b, same broadcasting rule as add.
Tensor mul(const Tensor& a, const Tensor& b);

// alpha * x.
Tensor scale(const Tensor& x, float alpha);

}  // namespace la3::ops
