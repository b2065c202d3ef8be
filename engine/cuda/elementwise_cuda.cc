// CudaBackend: elementwise arithmetic, scale, axpy and fill (kernels/elementwise.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/elementwise.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  kernels::launch_add(StreamLaunch{stream_}, p, a, b, out);
}
void CudaBackend::add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) {
  kernels::launch_binary_backward(StreamLaunch{stream_}, p, dout, nullptr, nullptr, da, db);
}
void CudaBackend::mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  kernels::launch_mul(StreamLaunch{stream_}, p, a, b, out);
}
void CudaBackend::mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b,
                               float* da, float* db) {
  kernels::launch_binary_backward(StreamLaunch{stream_}, p, dout, a, b, da, db);
}
void CudaBackend::scale(int64_t count, float alpha, const float* x, float* out) {
  kernels::launch_scale(StreamLaunch{stream_}, count, alpha, x, out);
}
void CudaBackend::axpy(int64_t count, float alpha, const float* x, float* y) {
  kernels::launch_axpy(StreamLaunch{stream_}, count, alpha, x, y);
}
void CudaBackend::fill(int64_t count, float value, float* out) {
  kernels::launch_fill(StreamLaunch{stream_}, count, value, out);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
