// Embedding lookup (differentiable in the table; backward is a scatter-add).
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// table [vocab, dim], ids (i32 or i64, any shape) -> [ids..., dim]. An id outside
// [0, vocab) is an OutOfRange error that names the id and its position.
Tensor embedding(const Tensor& table, const Tensor& ids);

}  // namespace la3::ops
