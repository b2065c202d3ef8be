// Elementwise arithmetic (f32): add/mul with a suffix-broadcast b and their gradients, scale,
// axpy (the tape's gradient accumulation) and fill. The CUDA counterpart of
// engine/cpu/elementwise_cpu.cc.
#pragma once

#include <cstdint>

#include "kernels/op_params.h"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

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

}  // namespace la3::kernels
