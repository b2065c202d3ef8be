// Softmax over the last dimension on f32 or bf16 activations (fp32 statistics), one block per
// row; the CUDA counterpart of engine/cpu/softmax_cpu.cc.
#pragma once

#include <cfloat>
#include <cstdint>
#include <type_traits>

#include "kernels/bf16.cuh"
#include "kernels/block_reduce.cuh"
#include "kernels/op_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kSoftmaxThreads = 128;

// T is the activation storage (float or uint16_t bf16 bits, kernels/bf16.cuh); the maximum,
// the exponentials and the row sums are fp32.
template <typename T>
__global__ void softmax_forward_kernel(SoftmaxParams p, const T* x, T* out) {
  LA3_SHARED(float, scratch, [kSoftmaxThreads / 32]);
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * p.cols;
  T* out_row = out + row * p.cols;
  float local_max = -FLT_MAX;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) local_max = fmaxf(local_max, load_act(x_row, c));
  const float max_value = block_max(local_max, scratch);
  float local_sum = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float e = expf(load_act(x_row, c) - max_value);
    if (fabsf(e) < FLT_MIN) e = 0.0f;
    // f32 keeps the exponential in `out` for the normalising pass; a bf16 `out` cannot hold it
    // unrounded, so that pass recomputes it (one rounding per stored probability).
    if constexpr (std::is_same_v<T, float>) out_row[c] = e;
    local_sum += e;
  }
  const float inverse = 1.0f / block_sum(local_sum, scratch);
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    if constexpr (std::is_same_v<T, float>) {
      out_row[c] *= inverse;
    } else {
      float e = expf(load_act(x_row, c) - max_value);
      if (fabsf(e) < FLT_MIN) e = 0.0f;
      store_act(out_row, c, e * inverse);
    }
  }
}

// dx = y * (dy - sum(dy * y)), the dot product in fp32.
template <typename T>
__global__ void softmax_backward_kernel(SoftmaxParams p, const T* dout, const T* out, T* dx) {
  LA3_SHARED(float, scratch, [kSoftmaxThreads / 32]);
  const int64_t row = blockIdx.x;
  const T* y = out + row * p.cols;
  const T* dy = dout + row * p.cols;
  float local = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) local += load_act(dy, c) * load_act(y, c);
  const float dot = block_sum(local, scratch);
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    store_act(dx, row * p.cols + c, load_act(y, c) * (load_act(dy, c) - dot));
  }
}

// --- launchers (kernels/launch.h): one block per row -------------------------------------------

template <typename Launch, typename T>
void launch_softmax_forward(const Launch& launch, const SoftmaxParams& p, const T* x, T* out) {
  if (p.rows > 0) {
    launch(softmax_forward_kernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(kSoftmaxThreads), 0, p, x, out);
  }
}
template <typename Launch, typename T>
void launch_softmax_backward(const Launch& launch, const SoftmaxParams& p, const T* dout, const T* out, T* dx) {
  if (p.rows > 0) {
    launch(softmax_backward_kernel<T>, dim3(static_cast<unsigned>(p.rows)), dim3(kSoftmaxThreads), 0, p, dout, out, dx);
  }
}

}  // namespace la3::kernels
