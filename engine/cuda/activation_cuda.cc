// CudaBackend: ReLU, gelu_new and the gated-GELU product (kernels/activation.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/activation.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::relu_forward(int64_t count, const float* x, float* out) {
  kernels::launch_relu_forward(StreamLaunch{stream_}, count, x, out);
}
void CudaBackend::relu_backward(int64_t count, const float* dout, const float* x, float* dx) {
  kernels::launch_relu_backward(StreamLaunch{stream_}, count, dout, x, dx);
}
void CudaBackend::gelu_new_forward(int64_t count, const float* x, float* out) {
  kernels::launch_gelu_new_forward(StreamLaunch{stream_}, count, x, out);
}
void CudaBackend::gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) {
  kernels::launch_gelu_new_backward(StreamLaunch{stream_}, count, dout, x, dx);
}
void CudaBackend::gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) {
  kernels::launch_gated_gelu_forward(StreamLaunch{stream_}, count, gate, linear, out);
}
void CudaBackend::gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear,
                                      float* dgate, float* dlinear) {
  if (count == 0) return;
  // The kernel writes both gradients; route an unwanted one to device scratch.
  DeviceScratch scratch(*allocator_,
                        dgate == nullptr || dlinear == nullptr ? static_cast<size_t>(count) * sizeof(float) : 0);
  kernels::launch_gated_gelu_backward(StreamLaunch{stream_}, count, dout, gate, linear,
                                      dgate != nullptr ? dgate : scratch.as<float>(),
                                      dlinear != nullptr ? dlinear : scratch.as<float>());
}

}  // namespace la3::LA3_CUDA_FLAVOUR
