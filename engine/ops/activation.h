// Activations of the T5 feed-forward blocks (differentiable). Inputs are activations, f32 or
// bf16 (bf16 on the CUDA devices; the CPU backend refuses it): the output and the gradients
// have the input's type, the arithmetic is fp32.
#pragma once

#include "engine/tensor.h"

namespace la3::ops {

// max(x, 0); the gradient at exactly 0 is 0 (as torch).
Tensor relu(const Tensor& x);

// The tanh approximation of GELU that transformers calls "gelu_new" (NewGELUActivation):
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
Tensor gelu_new(const Tensor& x);

// The T5.1.1 / MolT5 gated-GELU product gelu_new(gate) * linear, fused.
Tensor gated_gelu(const Tensor& gate, const Tensor& linear);

}  // namespace la3::ops
