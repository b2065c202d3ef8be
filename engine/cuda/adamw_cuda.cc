// CudaBackend: the AdamW update, optionally writing the bf16 weight copy (kernels/adamw.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/adamw.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  kernels::launch_adamw(StreamLaunch{stream_}, p, param, grad, exp_avg, exp_avg_sq, param_bf16);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
