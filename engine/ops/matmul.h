// Matrix products (forward and backward through the autograd tape).
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

struct MatmulOptions {
  bool trans_a = false;  // use the transpose of a's last two dimensions
  bool trans_b = false;  // use the transpose of b's last two dimensions
  float alpha = 1.0f;    // out = alpha * op(a) op(b)
};

// a [..., M, K] (or [..., K, M] with trans_a), b [..., K, N] with the same leading
// dimensions, or b [K, N] shared by every batch item (with trans_b: [N, K]) -> [..., M, N].
Tensor matmul(const Tensor& a, const Tensor& b, const MatmulOptions& options = {});

// A linear layer without bias, as torch.nn.functional.linear: x [..., in], weight [out, in]
// (the Hugging Face layout) -> [..., out].
Tensor linear(const Tensor& x, const Tensor& weight);

}  // namespace la3::ops
