// AdamW update on the CPU, in the operation order of torch.optim.AdamW's single-tensor path
// so the fp32 results agree to rounding.
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/dtype.h"
#include "kernels/adamw_scalars.h"
#include "kernels/host_device.h"

namespace la3 {

void CpuBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                            float* exp_avg_sq, uint16_t* param_bf16) {
  const kernels::AdamWScalars s = kernels::adamw_scalars(p);
#pragma omp parallel for schedule(static) if (worth_parallel(p.count))
  for (int64_t i = 0; i < p.count; ++i) {
    const float g = kernels::mul_rn(grad[i], s.grad_scale);
    param[i] *= s.decay;
    exp_avg[i] += s.avg_weight * (g - exp_avg[i]);
    exp_avg_sq[i] = exp_avg_sq[i] * s.beta2 + s.sq_weight * g * g;
    const float denom = std::sqrt(exp_avg_sq[i]) / s.bias_correction2_sqrt + s.eps;
    param[i] += -s.step_size * (exp_avg[i] / denom);
    if (param_bf16 != nullptr) param_bf16[i] = float_to_bf16(param[i]).bits;
  }
}

// One tensor after the other: a CPU call costs no launch, and each tensor's loop is already
// parallel.
void CpuBackend::adamw_step_multi(const kernels::AdamWParams& p, const kernels::AdamWTensor* tensors,
                                  int64_t tensor_count) {
  kernels::AdamWParams one = p;
  for (int64_t k = 0; k < tensor_count; ++k) {
    const kernels::AdamWTensor& t = tensors[k];
    one.count = t.count;
    adamw_step(one, t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.param_bf16);
  }
}

}  // namespace la3
