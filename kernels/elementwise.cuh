// Elementwise arithmetic (f32): add/mul with a suffix-broadcast b and their gradients, scale,
// axpy (the tape's gradient accumulation) and fill. The CUDA counterpart of
// engine/cpu/elementwise_cpu.cc.
#pragma once

#include <cstdint>

#include "kernels/launch.h"
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

// --- launchers (kernels/launch.h): one thread per element, pointwise_grid ------------------

template <typename Launch>
void launch_add(const Launch& launch, const BinaryParams& p, const float* a, const float* b, float* out) {
  launch_pointwise(launch, add_kernel, p.count, p, a, b, out);
}
template <typename Launch>
void launch_mul(const Launch& launch, const BinaryParams& p, const float* a, const float* b, float* out) {
  launch_pointwise(launch, mul_kernel, p.count, p, a, b, out);
}
// The gradients of a (op) b with b broadcast: da = dout (* b for mul) when da is not null,
// db += the column sums of dout (* a for mul) when db is not null. For add, a and b are null.
template <typename Launch>
void launch_binary_backward(const Launch& launch, const BinaryParams& p, const float* dout, const float* a,
                            const float* b, float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) launch_pointwise(launch, binary_backward_a_kernel, p.count, p, dout, b, da);
  // One thread per column of b (a fixed-order sum over the repetitions).
  if (db != nullptr) launch_pointwise(launch, binary_backward_b_kernel, p.b_period, p, dout, a, db);
}
template <typename Launch>
void launch_scale(const Launch& launch, int64_t count, float alpha, const float* x, float* out) {
  launch_pointwise(launch, scale_kernel, count, count, alpha, x, out);
}
template <typename Launch>
void launch_axpy(const Launch& launch, int64_t count, float alpha, const float* x, float* y) {
  launch_pointwise(launch, axpy_kernel, count, count, alpha, x, y);
}
template <typename Launch>
void launch_fill(const Launch& launch, int64_t count, float value, float* out) {
  launch_pointwise(launch, fill_kernel, count, count, value, out);
}

}  // namespace la3::kernels
