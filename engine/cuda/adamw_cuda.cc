// CudaBackend: the AdamW update, optionally writing the bf16 weight copy (kernels/adamw.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/adamw.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  if (p.count > 0) {
    launch_kernel(kernels::adamw_kernel, kernels::pointwise_grid(p.count), dim3(kernels::kPointwiseThreads), 0, stream_, kernels::adamw_scalars(p),
                  p.count, param, grad, exp_avg, exp_avg_sq, param_bf16);
  }
}

}  // namespace la3::LA3_CUDA_FLAVOUR
