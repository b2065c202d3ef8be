// Pointwise CUDA kernels (f32): activations of the T5 feed-forward blocks, dropout with the
// shared Philox keying, and the AdamW update. The CUDA counterparts of engine/cpu/
// {activation,dropout,adamw}_cpu.cc; checked against them under the SIMT emulation.
// One thread per element, grid-stride loops, so any launch size covers any count.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/adamw_scalars.h"
#include "kernels/bf16.cuh"
#include "kernels/dropout_key.cuh"
#include "kernels/op_params.h"
#include "kernels/philox.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kPointwiseThreads = 256;

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

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

// Inverted dropout of a contiguous [rows, positions, width] tensor: the same keep decision as
// the CPU backend for every element, keyed by its (global row, position, column).
__global__ void dropout_kernel(DropoutParams p, int64_t count, const float* x, float* out) {
  const float keep_scale = 1.0f / (1.0f - p.p);
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    out[i] = dropout_keep(p.p, p.seed, p.step, p.stream, dropout_key_of_index(p, i)) ? x[i] * keep_scale : 0.0f;
  }
}

// The fp32 master update; when param_bf16 is not null it also receives the updated weight
// rounded to bf16 (the copy the bf16 GEMMs read), in the same pass.
__global__ void adamw_kernel(AdamWScalars s, int64_t count, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const float g = grad[i];
    float w = param[i] * s.decay;
    const float m = exp_avg[i] + s.avg_weight * (g - exp_avg[i]);
    const float v = exp_avg_sq[i] * s.beta2 + s.sq_weight * g * g;
    const float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
    w += -s.step_size * (m / denom);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = w;
    if (param_bf16 != nullptr) param_bf16[i] = to_bf16_bits(w);
  }
}

}  // namespace la3::kernels

namespace la3::kernels {

// out[i] = a[i] + b[i % b_period] (b broadcast over leading dimensions).
__global__ void add_kernel(BinaryParams p, const float* a, const float* b, float* out) {
  for (int64_t i = first_index(); i < p.count; i += grid_stride()) out[i] = a[i] + b[i % p.b_period];
}
__global__ void mul_kernel(BinaryParams p, const float* a, const float* b, float* out) {
  for (int64_t i = first_index(); i < p.count; i += grid_stride()) out[i] = a[i] * b[i % p.b_period];
}
// da = dout * b (when da); for add pass b = nullptr to copy dout.
__global__ void binary_backward_a_kernel(BinaryParams p, const float* dout, const float* b, float* da) {
  for (int64_t i = first_index(); i < p.count; i += grid_stride()) da[i] = b == nullptr ? dout[i] : dout[i] * b[i % p.b_period];
}
// db[c] += sum over repetitions r of dout[r * period + c] (* a[...] for mul): one thread per
// column, fixed order (deterministic).
__global__ void binary_backward_b_kernel(BinaryParams p, const float* dout, const float* a, float* db) {
  const int64_t c = first_index();
  if (c >= p.b_period) return;
  float sum = 0.0f;
  for (int64_t i = c; i < p.count; i += p.b_period) sum += a == nullptr ? dout[i] : dout[i] * a[i];
  db[c] += sum;
}
__global__ void scale_kernel(int64_t count, float alpha, const float* x, float* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) out[i] = alpha * x[i];
}
__global__ void axpy_kernel(int64_t count, float alpha, const float* x, float* y) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) y[i] += alpha * x[i];
}
__global__ void fill_kernel(int64_t count, float value, float* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) out[i] = value;
}
__global__ void gelu_new_forward_kernel(int64_t count, const float* x, float* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) out[i] = gelu_new_value(x[i]);
}
__global__ void gelu_new_backward_kernel(int64_t count, const float* dout, const float* x, float* dx) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) dx[i] = dout[i] * gelu_new_derivative(x[i]);
}

}  // namespace la3::kernels
