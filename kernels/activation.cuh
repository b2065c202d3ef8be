// Activation kernels (f32) of the T5 feed-forward blocks: ReLU (v1.0), gelu_new and the
// gated-GELU product (v1.1). The CUDA counterpart of engine/cpu/activation_cpu.cc.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/launch.h"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) and its derivative.
__device__ __forceinline__ float gelu_new_value(float x) {
  const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}
__device__ __forceinline__ float gelu_new_derivative(float x) {
  const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  const float t = tanhf(inner);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
}

__global__ void relu_forward_kernel(int64_t count, const float* x, float* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void relu_backward_kernel(int64_t count, const float* dout, const float* x, float* dx) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) dx[i] = x[i] > 0.0f ? dout[i] : 0.0f;
}
__global__ void gated_gelu_forward_kernel(int64_t count, const float* gate, const float* linear, float* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) out[i] = gelu_new_value(gate[i]) * linear[i];
}
__global__ void gated_gelu_backward_kernel(int64_t count, const float* dout, const float* gate, const float* linear,
                                           float* dgate, float* dlinear) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    dgate[i] = dout[i] * linear[i] * gelu_new_derivative(gate[i]);
    dlinear[i] = dout[i] * gelu_new_value(gate[i]);
  }
}

__global__ void gelu_new_forward_kernel(int64_t count, const float* x, float* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) out[i] = gelu_new_value(x[i]);
}
__global__ void gelu_new_backward_kernel(int64_t count, const float* dout, const float* x, float* dx) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) dx[i] = dout[i] * gelu_new_derivative(x[i]);
}

// --- launchers (kernels/launch.h): one thread per element, pointwise_grid ------------------

template <typename Launch>
void launch_relu_forward(const Launch& launch, int64_t count, const float* x, float* out) {
  launch_pointwise(launch, relu_forward_kernel, count, count, x, out);
}
template <typename Launch>
void launch_relu_backward(const Launch& launch, int64_t count, const float* dout, const float* x, float* dx) {
  launch_pointwise(launch, relu_backward_kernel, count, count, dout, x, dx);
}
template <typename Launch>
void launch_gelu_new_forward(const Launch& launch, int64_t count, const float* x, float* out) {
  launch_pointwise(launch, gelu_new_forward_kernel, count, count, x, out);
}
template <typename Launch>
void launch_gelu_new_backward(const Launch& launch, int64_t count, const float* dout, const float* x, float* dx) {
  launch_pointwise(launch, gelu_new_backward_kernel, count, count, dout, x, dx);
}
template <typename Launch>
void launch_gated_gelu_forward(const Launch& launch, int64_t count, const float* gate, const float* linear, float* out) {
  launch_pointwise(launch, gated_gelu_forward_kernel, count, count, gate, linear, out);
}
// Writes both gradients (neither may be null).
template <typename Launch>
void launch_gated_gelu_backward(const Launch& launch, int64_t count, const float* dout, const float* gate,
                                const float* linear, float* dgate, float* dlinear) {
  launch_pointwise(launch, gated_gelu_backward_kernel, count, count, dout, gate, linear, dgate, dlinear);
}

}  // namespace la3::kernels
