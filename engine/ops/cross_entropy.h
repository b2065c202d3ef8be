// Token cross-entropy with ignore_index (differentiable in the logits), fused with the
// log-softmax so the [rows, vocab] probabilities are never stored.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace la3::ops {

enum class Reduction { kMean, kSum };

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  // kMean divides by the number of non-ignored tokens (torch's CrossEntropyLoss default).
  // With no counted token at all the loss is 0 and its gradient 0 (torch returns NaN).
  Reduction reduction = Reduction::kMean;
};

// logits [..., vocab] f32, labels [...] i32/i64 -> a scalar. A label outside [0, vocab) that
// is not ignore_index is an OutOfRange error naming the label and its position.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& options = {});

}  // namespace la3::ops
