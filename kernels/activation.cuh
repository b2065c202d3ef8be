// Activation kernels of the T5 feed-forward blocks, on f32 or bf16 activations: ReLU (v1.0), gelu_new and the
// gated-GELU product (v1.1). The CUDA counterpart of engine/cpu/activation_cpu.cc.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/bf16.cuh"
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

// Every kernel is a template over the activation storage T (float or uint16_t bf16 bits,
// kernels/bf16.cuh): loads widen to fp32, one rounding per stored element.

template <typename T>
__global__ void relu_forward_kernel(int64_t count, const T* x, T* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const float v = load_act(x, i);
    store_act(out, i, v > 0.0f ? v : 0.0f);
  }
}
template <typename T>
__global__ void relu_backward_kernel(int64_t count, const T* dout, const T* x, T* dx) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    store_act(dx, i, load_act(x, i) > 0.0f ? load_act(dout, i) : 0.0f);
  }
}
template <typename T>
__global__ void gated_gelu_forward_kernel(int64_t count, const T* gate, const T* linear, T* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    store_act(out, i, gelu_new_value(load_act(gate, i)) * load_act(linear, i));
  }
}
template <typename T>
__global__ void gated_gelu_backward_kernel(int64_t count, const T* dout, const T* gate, const T* linear, T* dgate,
                                           T* dlinear) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const float d = load_act(dout, i), g = load_act(gate, i), l = load_act(linear, i);
    store_act(dgate, i, d * l * gelu_new_derivative(g));
    store_act(dlinear, i, d * gelu_new_value(g));
  }
}

template <typename T>
__global__ void gelu_new_forward_kernel(int64_t count, const T* x, T* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) store_act(out, i, gelu_new_value(load_act(x, i)));
}
template <typename T>
__global__ void gelu_new_backward_kernel(int64_t count, const T* dout, const T* x, T* dx) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    store_act(dx, i, load_act(dout, i) * gelu_new_derivative(load_act(x, i)));
  }
}

// --- launchers (kernels/launch.h): one thread per element, pointwise_grid ------------------

template <typename Launch, typename T>
void launch_relu_forward(const Launch& launch, int64_t count, const T* x, T* out) {
  launch_pointwise(launch, relu_forward_kernel<T>, count, count, x, out);
}
template <typename Launch, typename T>
void launch_relu_backward(const Launch& launch, int64_t count, const T* dout, const T* x, T* dx) {
  launch_pointwise(launch, relu_backward_kernel<T>, count, count, dout, x, dx);
}
template <typename Launch, typename T>
void launch_gelu_new_forward(const Launch& launch, int64_t count, const T* x, T* out) {
  launch_pointwise(launch, gelu_new_forward_kernel<T>, count, count, x, out);
}
template <typename Launch, typename T>
void launch_gelu_new_backward(const Launch& launch, int64_t count, const T* dout, const T* x, T* dx) {
  launch_pointwise(launch, gelu_new_backward_kernel<T>, count, count, dout, x, dx);
}
template <typename Launch, typename T>
void launch_gated_gelu_forward(const Launch& launch, int64_t count, const T* gate, const T* linear, T* out) {
  launch_pointwise(launch, gated_gelu_forward_kernel<T>, count, count, gate, linear, out);
}
// Writes both gradients (neither may be null).
template <typename Launch, typename T>
void launch_gated_gelu_backward(const Launch& launch, int64_t count, const T* dout, const T* gate, const T* linear,
                                T* dgate, T* dlinear) {
  launch_pointwise(launch, gated_gelu_backward_kernel<T>, count, count, dout, gate, linear, dgate, dlinear);
}

}  // namespace la3::kernels
