// The Philox element key of a dropout mask element (the `index` of kernels/philox.cuh).
//
// Why not the flat index in the tensor: with data parallelism or gradient accumulation one
// global batch is split into pieces, each padded to its own longest sequence, so an element's
// flat index depends on the split. Its key must not: it is built from the element's place in
// the *global* batch only,
//
//   key = ((global_row * 2^16) + position) * 2^16 + column
//
// so an example draws the same mask whichever rank, micro-batch or padded length it lands in.
//   hidden-state tensors viewed as [rows, positions, width] (DropoutParams):
//     global_row = row_offset + row
//   attention probabilities [batch, heads, q_len, k_len] (AttentionParams):
//     global_row = (row_offset + b) * heads + h, position = query_offset + i (the absolute
//     query position, so a cached decoding step draws the row of full attention), column = j.
// Limits (checked by the ops, which name the shape): positions < 2^16, width <= 2^16, global
// rows < 2^32, so the three fields never overlap. Every row starts at a multiple of 2^16:
// a row's columns are consecutive keys, and the CPU loops draw one Philox block per four of them.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/op_params.h"

namespace la3::kernels {

constexpr int kDropoutKeyFieldBits = 16;
constexpr int64_t kDropoutPositionLimit = int64_t{1} << kDropoutKeyFieldBits;  // positions (L) must be below
constexpr int64_t kDropoutMaxWidth = int64_t{1} << kDropoutKeyFieldBits;       // width (W) at most
constexpr int64_t kDropoutRowLimit = int64_t{1} << 32;                          // global rows below

// The key of column `column` at position `position` of global row `global_row`.
LA3_HOST_DEVICE uint64_t dropout_element_key(int64_t global_row, int64_t position, int64_t column) {
  return ((static_cast<uint64_t>(global_row) << kDropoutKeyFieldBits | static_cast<uint64_t>(position))
          << kDropoutKeyFieldBits) |
         static_cast<uint64_t>(column);
}

// Element (row, position, column) of a [rows, positions, width] tensor under DropoutParams p.
LA3_HOST_DEVICE uint64_t dropout_key(const DropoutParams& p, int64_t row, int64_t position, int64_t column) {
  return dropout_element_key(p.row_offset + row, position, column);
}

// The key of flat element `index` of a contiguous [rows, positions, width] tensor.
LA3_HOST_DEVICE uint64_t dropout_key_of_index(const DropoutParams& p, int64_t index) {
  const int64_t line = index / p.width;  // row * positions + position
  const int64_t column = index - line * p.width;
  const int64_t row = line / p.positions;
  return dropout_key(p, row, line - row * p.positions, column);
}

// Probability element (b, h, query i, key j) of attention (q_len/k_len relative indices).
LA3_HOST_DEVICE uint64_t attention_dropout_key(const AttentionParams& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  return dropout_element_key((p.dropout.row_offset + b) * p.heads + h, p.query_offset + i, j);
}

// Whether `count` elements fill whole [positions, width] rows (the backends' precondition).
LA3_HOST_DEVICE bool dropout_layout_fits(const DropoutParams& p, int64_t count) {
  return p.positions >= 1 && p.width >= 1 && count % (p.positions * p.width) == 0;
}

}  // namespace la3::kernels
