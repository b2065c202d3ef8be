// AdamW update on the CPU, in the operation order of torch.optim.AdamW's single-tensor path
// so the fp32 results agree to rounding.
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

namespace la3 {

void CpuBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                            float* exp_avg_sq) {
  // torch computes the bias corrections as Python floats (double) and hands them to fp32
  // tensor ops as scalars.
  const double bias_correction1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bias_correction2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  // Each scalar is formed in double and rounded once, where torch hands it to an fp32 op.
  const float step_size = static_cast<float>(p.lr / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float decay = static_cast<float>(1.0 - p.lr * p.weight_decay);
  const float avg_weight = static_cast<float>(1.0 - p.beta1);  // exp_avg.lerp_(grad, 1 - beta1)
  const float beta2 = static_cast<float>(p.beta2);
  const float sq_weight = static_cast<float>(1.0 - p.beta2);
  const float eps = static_cast<float>(p.eps);
#pragma omp parallel for schedule(static) if (worth_parallel(p.count))
  for (int64_t i = 0; i < p.count; ++i) {
    const float g = grad[i];
    param[i] *= decay;
    exp_avg[i] += avg_weight * (g - exp_avg[i]);
    exp_avg_sq[i] = exp_avg_sq[i] * beta2 + sq_weight * g * g;
    const float denom = std::sqrt(exp_avg_sq[i]) / bias_correction2_sqrt + eps;
    param[i] += -step_size * (exp_avg[i] / denom);
  }
}

}  // namespace la3
