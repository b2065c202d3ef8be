// Embedding lookup (differentiable in the table; backward is a scatter-add).
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace la3::ops {

// Who makes sure the ids are inside the table. The op's check reads ids on a GPU device back to
// the host, which makes the host wait for the device; a caller that checked them on the host
// before uploading them (check_embedding_ids) says so with kByCaller and the op reads nothing
// back. Ids the host can read are checked by the op either way (it costs no wait). Out-of-range
// ids under kByCaller are the caller's bug: the kernels index the table with them unchecked.
enum class IdCheck { kByOp, kByCaller };

// table [vocab, dim] (f32), ids (i32 or i64, any shape) -> [ids..., dim] of type `out_dtype`:
// f32, or bf16 (activations in bf16, on the CUDA devices; the rows are rounded once and the
// backward reads a bf16 gradient into the f32 table gradient). An id outside [0, vocab) is an
// OutOfRange error that names the id and its position.
Tensor embedding(const Tensor& table, const Tensor& ids, IdCheck check = IdCheck::kByOp,
                 DType out_dtype = DType::kF32);

// The op's check on its own: every id in [0, vocab), else the same OutOfRange error (ids on a
// GPU device are read back, a host synchronisation).
void check_embedding_ids(const Tensor& ids, int64_t vocab);

}  // namespace la3::ops
