// Embedding gather / scatter-add on the CPU (f32 activations). Ids were range-checked by the op.
#include <algorithm>

#include "engine/cpu/cpu_backend.h"

namespace la3 {

void CpuBackend::embedding_forward(const kernels::EmbeddingParams& p, DType act, const int64_t* ids,
                                   const float* table, void* out_in) {
  require_f32_activations("embedding_forward", act);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < p.count; ++i) {
    const float* row = table + ids[i] * p.dim;
    std::copy(row, row + p.dim, out + i * p.dim);
  }
}

// Serial scatter-add: repeated ids accumulate in a fixed order (deterministic).
void CpuBackend::embedding_backward(const kernels::EmbeddingParams& p, DType act, const int64_t* ids,
                                    const void* dout_in, float* dtable) {
  require_f32_activations("embedding_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  for (int64_t i = 0; i < p.count; ++i) {
    float* row = dtable + ids[i] * p.dim;
    const float* grad = dout + i * p.dim;
    for (int64_t c = 0; c < p.dim; ++c) row[c] += grad[c];
  }
}

}  // namespace la3
