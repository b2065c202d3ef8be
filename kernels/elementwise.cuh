// Elementwise arithmetic on activations (f32 or bf16): add/mul with a suffix-broadcast b and their gradients, scale,
// axpy (the tape's gradient accumulation) and fill. The CUDA counterpart of
// engine/cpu/elementwise_cpu.cc.
#pragma once

#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/launch.h"
#include "kernels/op_params.h"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// Every kernel is a template over the activation storage T (float or uint16_t bf16 bits,
// kernels/bf16.cuh): loads widen to fp32, one rounding per stored element.

// out[i] = a[i] + b[i % b_period] (b broadcast over leading dimensions).
template <typename T>
__global__ void add_kernel(BinaryParams p, const T* a, const T* b, T* out) {
  for (int64_t i = first_index(); i < p.count; i += grid_stride()) {
    store_act(out, i, load_act(a, i) + load_act(b, i % p.b_period));
  }
}
template <typename T>
__global__ void mul_kernel(BinaryParams p, const T* a, const T* b, T* out) {
  for (int64_t i = first_index(); i < p.count; i += grid_stride()) {
    store_act(out, i, load_act(a, i) * load_act(b, i % p.b_period));
  }
}
// da = dout * b (when da); for add pass b = nullptr to copy dout.
template <typename T>
__global__ void binary_backward_a_kernel(BinaryParams p, const T* dout, const T* b, T* da) {
  for (int64_t i = first_index(); i < p.count; i += grid_stride()) {
    store_act(da, i, b == nullptr ? load_act(dout, i) : load_act(dout, i) * load_act(b, i % p.b_period));
  }
}
// db[c] += sum over repetitions r of dout[r * period + c] (* a[...] for mul): one thread per
// column, fixed order (deterministic), grid-stride over the columns (the grid is clamped).
template <typename T>
__global__ void binary_backward_b_kernel(BinaryParams p, const T* dout, const T* a, T* db) {
  for (int64_t c = first_index(); c < p.b_period; c += grid_stride()) {
    float sum = 0.0f;
    for (int64_t i = c; i < p.count; i += p.b_period) sum += a == nullptr ? load_act(dout, i) : load_act(dout, i) * load_act(a, i);
    store_act(db, c, load_act(db, c) + sum);
  }
}
template <typename T>
__global__ void scale_kernel(int64_t count, float alpha, const T* x, T* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) store_act(out, i, alpha * load_act(x, i));
}
template <typename T>
__global__ void axpy_kernel(int64_t count, float alpha, const T* x, T* y) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) store_act(y, i, load_act(y, i) + alpha * load_act(x, i));
}
template <typename T>
__global__ void fill_kernel(int64_t count, float value, T* out) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) store_act(out, i, value);
}

// --- launchers (kernels/launch.h): one thread per element, pointwise_grid ------------------

template <typename Launch, typename T>
void launch_add(const Launch& launch, const BinaryParams& p, const T* a, const T* b, T* out) {
  launch_pointwise(launch, add_kernel<T>, p.count, p, a, b, out);
}
template <typename Launch, typename T>
void launch_mul(const Launch& launch, const BinaryParams& p, const T* a, const T* b, T* out) {
  launch_pointwise(launch, mul_kernel<T>, p.count, p, a, b, out);
}
// The gradients of a (op) b with b broadcast: da = dout (* b for mul) when da is not null,
// db += the column sums of dout (* a for mul) when db is not null. For add, a and b are null.
template <typename Launch, typename T>
void launch_binary_backward(const Launch& launch, const BinaryParams& p, const T* dout, const T* a, const T* b,
                            T* da, T* db) {
  if (p.count == 0) return;
  if (da != nullptr) launch_pointwise(launch, binary_backward_a_kernel<T>, p.count, p, dout, b, da);
  // One thread per column of b (a fixed-order sum over the repetitions).
  if (db != nullptr) launch_pointwise(launch, binary_backward_b_kernel<T>, p.b_period, p, dout, a, db);
}
template <typename Launch, typename T>
void launch_scale(const Launch& launch, int64_t count, float alpha, const T* x, T* out) {
  launch_pointwise(launch, scale_kernel<T>, count, count, alpha, x, out);
}
template <typename Launch, typename T>
void launch_axpy(const Launch& launch, int64_t count, float alpha, const T* x, T* y) {
  launch_pointwise(launch, axpy_kernel<T>, count, count, alpha, x, y);
}
template <typename Launch, typename T>
void launch_fill(const Launch& launch, int64_t count, float value, T* out) {
  launch_pointwise(launch, fill_kernel<T>, count, count, value, out);
}

}  // namespace la3::kernels
