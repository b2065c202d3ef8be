// CudaBackend: ReLU, gelu_new and the gated-GELU product (kernels/activation.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/activation.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::relu_forward(int64_t count, const float* x, float* out) {
  if (count > 0) launch_kernel(kernels::relu_forward_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, x, out);
}
void CudaBackend::relu_backward(int64_t count, const float* dout, const float* x, float* dx) {
  if (count > 0) launch_kernel(kernels::relu_backward_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, dout, x, dx);
}
void CudaBackend::gelu_new_forward(int64_t count, const float* x, float* out) {
  if (count > 0) launch_kernel(kernels::gelu_new_forward_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, x, out);
}
void CudaBackend::gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) {
  if (count > 0) launch_kernel(kernels::gelu_new_backward_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, dout, x, dx);
}
void CudaBackend::gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) {
  if (count > 0) launch_kernel(kernels::gated_gelu_forward_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, gate, linear, out);
}
void CudaBackend::gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear,
                                         float* dgate, float* dlinear) {
  if (count == 0) return;
  // The kernel writes both gradients; route an unwanted one to device scratch.
  DeviceScratch scratch(*allocator_, dgate == nullptr || dlinear == nullptr ? static_cast<size_t>(count) * sizeof(float) : 0);
  launch_kernel(kernels::gated_gelu_backward_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, dout, gate,
                linear, dgate != nullptr ? dgate : scratch.as<float>(), dlinear != nullptr ? dlinear : scratch.as<float>());
}

}  // namespace la3::LA3_CUDA_FLAVOUR
