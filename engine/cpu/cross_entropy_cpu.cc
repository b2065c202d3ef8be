// Token cross-entropy on the CPU, fused with log-softmax: the probabilities exist only
// transiently inside backward, one row at a time.
#include <cmath>

#include "engine/cpu/cpu_backend.h"

namespace la3 {

void CpuBackend::cross_entropy_forward(const kernels::CrossEntropyParams& p, const float* logits,
                                       const int64_t* labels, float* row_loss, float* row_lse) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* z = logits + row * p.vocab;
    float max_value = -INFINITY;
    for (int64_t c = 0; c < p.vocab; ++c) max_value = std::fmax(max_value, z[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < p.vocab; ++c) sum += std::exp(static_cast<double>(z[c] - max_value));
    const float lse = max_value + static_cast<float>(std::log(sum));
    row_lse[row] = lse;
    row_loss[row] = labels[row] == p.ignore_index ? 0.0f : lse - z[labels[row]];
  }
}

void CpuBackend::cross_entropy_backward(const kernels::CrossEntropyParams& p, const float* logits,
                                        const int64_t* labels, const float* row_lse, const float* row_weight,
                                        float* dlogits) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* z = logits + row * p.vocab;
    float* dz = dlogits + row * p.vocab;
    const float weight = row_weight[row];
    if (labels[row] == p.ignore_index || weight == 0.0f) {
      for (int64_t c = 0; c < p.vocab; ++c) dz[c] = 0.0f;
      continue;
    }
    const float lse = row_lse[row];
    for (int64_t c = 0; c < p.vocab; ++c) dz[c] = weight * std::exp(z[c] - lse);
    dz[labels[row]] -= weight;
  }
}

}  // namespace la3
