// Inverted dropout (differentiable) with a counter-based mask: element i of a tensor is kept
// when philox_uniform(seed, step, stream, i) >= p (kernels/philox.cuh), so every backend
// draws the same mask and backward recomputes it instead of storing it.
#pragma once

#include "engine/tensor.h"
#include "kernels/op_params.h"

namespace la3::ops {

// Returns x unchanged when !training or p == 0; p must be in [0, 1).
Tensor dropout(const Tensor& x, const kernels::DropoutParams& params, bool training);

}  // namespace la3::ops
