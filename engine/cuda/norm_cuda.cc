// CudaBackend: RMSNorm and softmax (kernels/rmsnorm.cuh, kernels/softmax.cuh).
#include <algorithm>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/rmsnorm.cuh"
#include "kernels/softmax.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out,
                                     float* rstd) {
  if (p.rows == 0) return;
  launch_kernel(kernels::rmsnorm_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kRmsNormThreads), 0,
               stream_, p, x, weight, out, rstd);
}
void CudaBackend::rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x,
                                      const float* weight, const float* rstd, float* dx, float* dweight) {
  if (p.rows == 0) return;
  launch_kernel(kernels::rmsnorm_backward_dx_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kRmsNormThreads),
               0, stream_, p, dout, x, weight, rstd, dx);
  if (dweight != nullptr) {
    launch_kernel(kernels::rmsnorm_backward_dweight_kernel,
                 dim3(static_cast<unsigned>((p.cols + kernels::kRmsNormThreads - 1) / kernels::kRmsNormThreads)),
                 dim3(kernels::kRmsNormThreads), 0, stream_, p, dout, x, rstd, dweight);
  }
}
void CudaBackend::softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) {
  if (p.rows > 0) launch_kernel(kernels::softmax_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kSoftmaxThreads), 0, stream_, p, x, out);
}
void CudaBackend::softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx) {
  if (p.rows > 0) launch_kernel(kernels::softmax_backward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kSoftmaxThreads), 0, stream_, p, dout, out, dx);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
