// The AdamW update (f32 master weights and moments, optional bf16 copy of the result), in the
// operation order of engine/cpu/adamw_cpu.cc (torch.optim.AdamW's single-tensor path).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/adamw_scalars.h"
#include "kernels/host_device.h"
#include "kernels/bf16.cuh"
#include "kernels/launch.h"
#include "kernels/op_params.h"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// The fp32 master update; when param_bf16 is not null it also receives the updated weight
// rounded to bf16 (the copy the bf16 GEMMs read), in the same pass.
__global__ void adamw_kernel(AdamWScalars s, int64_t count, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const float g = mul_rn(grad[i], s.grad_scale);
    float w = param[i] * s.decay;
    const float m = exp_avg[i] + s.avg_weight * (g - exp_avg[i]);
    const float v = exp_avg_sq[i] * s.beta2 + s.sq_weight * g * g;
    const float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
    w += -s.step_size * (m / denom);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = w;
    if (param_bf16 != nullptr) param_bf16[i] = to_bf16_bits(w);
  }
}

// --- launcher (kernels/launch.h) ---------------------------------------------------------------

template <typename Launch>
void launch_adamw(const Launch& launch, const AdamWParams& p, float* param, const float* grad, float* exp_avg,
                  float* exp_avg_sq, uint16_t* param_bf16) {
  launch_pointwise(launch, adamw_kernel, p.count, adamw_scalars(p), p.count, param, grad, exp_avg, exp_avg_sq,
                   param_bf16);
}

}  // namespace la3::kernels
