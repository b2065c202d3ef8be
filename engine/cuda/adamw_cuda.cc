// CudaBackend: the AdamW update, one tensor or a table of them per launch, optionally writing
// the bf16 weight copy (kernels/adamw.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/adamw.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  kernels::launch_adamw(StreamLaunch{stream_}, p, param, grad, exp_avg, exp_avg_sq, param_bf16);
}

void CudaBackend::adamw_step_multi(const kernels::AdamWParams& p, const kernels::AdamWTensor* tensors,
                                   int64_t tensor_count) {
  kernels::launch_adamw_multi(StreamLaunch{stream_}, p, tensors, tensor_count);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
