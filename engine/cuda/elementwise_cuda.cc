// CudaBackend: elementwise arithmetic, scale, axpy and fill (kernels/elementwise.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/elementwise.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  if (p.count == 0) return;
  launch_kernel(kernels::add_kernel, kernels::pointwise_grid(p.count), dim3(kernels::kPointwiseThreads), 0, stream_, p, a, b, out);
}
void CudaBackend::add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) {
    launch_kernel(kernels::binary_backward_a_kernel, kernels::pointwise_grid(p.count), dim3(kernels::kPointwiseThreads), 0, stream_, p, dout,
                 static_cast<const float*>(nullptr), da);
  }
  if (db != nullptr) {
    launch_kernel(kernels::binary_backward_b_kernel, kernels::pointwise_grid(p.b_period), dim3(kernels::kPointwiseThreads), 0, stream_, p, dout,
                 static_cast<const float*>(nullptr), db);
  }
}
void CudaBackend::mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  if (p.count == 0) return;
  launch_kernel(kernels::mul_kernel, kernels::pointwise_grid(p.count), dim3(kernels::kPointwiseThreads), 0, stream_, p, a, b, out);
}
void CudaBackend::mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b,
                                  float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) launch_kernel(kernels::binary_backward_a_kernel, kernels::pointwise_grid(p.count), dim3(kernels::kPointwiseThreads), 0, stream_, p, dout, b, da);
  if (db != nullptr) launch_kernel(kernels::binary_backward_b_kernel, kernels::pointwise_grid(p.b_period), dim3(kernels::kPointwiseThreads), 0, stream_, p, dout, a, db);
}
void CudaBackend::scale(int64_t count, float alpha, const float* x, float* out) {
  if (count > 0) launch_kernel(kernels::scale_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, alpha, x, out);
}
void CudaBackend::axpy(int64_t count, float alpha, const float* x, float* y) {
  if (count > 0) launch_kernel(kernels::axpy_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, alpha, x, y);
}
void CudaBackend::fill(int64_t count, float value, float* out) {
  if (count > 0) launch_kernel(kernels::fill_kernel, kernels::pointwise_grid(count), dim3(kernels::kPointwiseThreads), 0, stream_, count, value, out);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
