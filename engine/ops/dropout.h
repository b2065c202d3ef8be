// Inverted dropout (differentiable) with a counter-based mask: an element is kept when
// philox_uniform(seed, step, stream, key) >= p (kernels/philox.cuh), where the key comes from
// its (row_offset + row, position, column) in x viewed as [rows, positions, width]
// (kernels/dropout_key.cuh): rows = shape[0], positions = the product of the middle dimensions,
// width = the last dimension. So every backend draws the same mask, backward recomputes it
// instead of storing it, and an example's mask depends neither on the padded length of its
// batch nor on which rank or micro-batch holds it (callers set params.row_offset to the
// global index of x's row 0; the op fills the layout fields from x's shape). x is f32 or bf16
// (on the CUDA devices; out and dx have its type): the mask is the same for both.
#pragma once

#include "engine/tensor.h"
#include "kernels/op_params.h"

namespace la3::ops {

// Returns x unchanged when !training or p == 0; p must be in [0, 1). When the mask is drawn,
// positions must be < 2^16, width <= 2^16 and row_offset + rows <= 2^32 (else an error naming
// the shape).
Tensor dropout(const Tensor& x, const kernels::DropoutParams& params, bool training);

}  // namespace la3::ops
