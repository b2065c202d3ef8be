// Token cross-entropy on the CPU, fused with log-softmax: the probabilities exist only
// transiently inside backward, one row at a time.
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/cpu/denormals.h"

namespace la3 {

void CpuBackend::cross_entropy_forward(const kernels::CrossEntropyParams& p, DType act, const void* logits_in,
                                       const int64_t* labels, float* row_loss, float* row_lse) {
  require_f32_activations("cross_entropy_forward", act);
  const float* logits = static_cast<const float*>(logits_in);
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.vocab))
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* z = logits + row * p.vocab;
    float max_value = -INFINITY;
    for (int64_t c = 0; c < p.vocab; ++c) max_value = std::fmax(max_value, z[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < p.vocab; ++c) sum += std::exp(static_cast<double>(z[c] - max_value));
    const double log_sum = std::log(sum);
    row_lse[row] = max_value + static_cast<float>(log_sum);
    // loss = (max - z[label]) + log(sum), not lse - z[label]: lse rounded to fp32 carries an
    // error of half an ulp of |max| (3e-5 at logits ~1000), which the subtraction would pass
    // on whole to a loss that may be tiny. max - z[label] is exact for nearby values.
    row_loss[row] = labels[row] == p.ignore_index
                        ? 0.0f
                        : static_cast<float>(static_cast<double>(max_value - z[labels[row]]) + log_sum);
  }
}

void CpuBackend::cross_entropy_backward(const kernels::CrossEntropyParams& p, DType act, const void* logits_in,
                                        const int64_t* labels, const float* row_lse, const float* row_weight,
                                        void* dlogits_out) {
  require_f32_activations("cross_entropy_backward", act);
  const float* logits = static_cast<const float*>(logits_in);
  float* dlogits = static_cast<float*>(dlogits_out);
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.vocab))
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* z = logits + row * p.vocab;
    float* dz = dlogits + row * p.vocab;
    const float weight = row_weight[row];
    if (labels[row] == p.ignore_index || weight == 0.0f) {
      for (int64_t c = 0; c < p.vocab; ++c) dz[c] = 0.0f;
      continue;
    }
    const float lse = row_lse[row];
    for (int64_t c = 0; c < p.vocab; ++c) dz[c] = flush_subnormal(weight * std::exp(z[c] - lse));
    dz[labels[row]] -= weight;
  }
}

}  // namespace la3
