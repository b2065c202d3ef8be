// Embedding gather / scatter-add on the CPU. Ids were range-checked by the op.
#include <algorithm>

#include "engine/cpu/cpu_backend.h"

namespace la3 {

void CpuBackend::embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table,
                                   float* out) {
  for (int64_t i = 0; i < p.count; ++i) {
    const float* row = table + ids[i] * p.dim;
    std::copy(row, row + p.dim, out + i * p.dim);
  }
}

// Serial scatter-add: repeated ids accumulate in a fixed order (deterministic).
void CpuBackend::embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout,
                                    float* dtable) {
  for (int64_t i = 0; i < p.count; ++i) {
    float* row = dtable + ids[i] * p.dim;
    const float* grad = dout + i * p.dim;
    for (int64_t c = 0; c < p.dim; ++c) row[c] += grad[c];
  }
}

}  // namespace la3
