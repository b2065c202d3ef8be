// CudaBackend: row softmax (kernels/softmax.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/softmax.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) {
  if (p.rows > 0) launch_kernel(kernels::softmax_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kSoftmaxThreads), 0, stream_, p, x, out);
}
void CudaBackend::softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx) {
  if (p.rows > 0) launch_kernel(kernels::softmax_backward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kSoftmaxThreads), 0, stream_, p, dout, out, dx);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
