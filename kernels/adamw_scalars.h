// The fp32 scalars of one AdamW step, formed in double and rounded once where torch hands
// them to fp32 ops (its hyper-parameters are Python floats). Shared by the CPU backend and
// the CUDA kernel so both update with bit-identical constants.
#pragma once

#include <cmath>

#include "kernels/op_params.h"

namespace la3::kernels {

struct AdamWScalars {
  float decay;                  // 1 - lr * weight_decay
  float avg_weight;             // 1 - beta1: exp_avg.lerp_(grad, 1 - beta1)
  float beta2;
  float sq_weight;              // 1 - beta2
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  float eps;
  float grad_scale;             // clipping coefficient (1: none)
};

inline AdamWScalars adamw_scalars(const AdamWParams& p) {
  const double bias_correction1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bias_correction2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  return AdamWScalars{static_cast<float>(1.0 - p.lr * p.weight_decay), static_cast<float>(1.0 - p.beta1),
                      static_cast<float>(p.beta2),                     static_cast<float>(1.0 - p.beta2),
                      static_cast<float>(p.lr / bias_correction1),     static_cast<float>(std::sqrt(bias_correction2)),
                      static_cast<float>(p.eps),                       p.grad_scale};
}

}  // namespace la3::kernels
