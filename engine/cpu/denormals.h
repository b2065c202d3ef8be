// Why: exp() of very negative arguments gives subnormal floats (below 1.2e-38). They are
// numerically irrelevant next to the other terms, but x86 handles them in microcode, and a
// GEMM fed with them runs ~10x slower: the first MolT5-small backward pass (untied LM head,
// logits spread over 32128 entries) took 20 s instead of 2 s. The CPU kernels whose outputs
// feed GEMMs (softmax, attention probabilities, cross-entropy gradients) flush them to 0.
#pragma once

#include <cfloat>
#include <cmath>

namespace la3 {

inline float flush_subnormal(float value) { return std::fabs(value) < FLT_MIN ? 0.0f : value; }

}  // namespace la3
