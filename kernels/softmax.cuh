// Softmax over the last dimension (f32), one block per row; the CUDA counterpart of
// engine/cpu/softmax_cpu.cc.
#pragma once

#include <cfloat>
#include <cstdint>

#include "kernels/block_reduce.cuh"
#include "kernels/op_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kSoftmaxThreads = 128;

__global__ void softmax_forward_kernel(SoftmaxParams p, const float* x, float* out) {
  __shared__ float scratch[kSoftmaxThreads / 32];
  const int64_t row = blockIdx.x;
  const float* x_row = x + row * p.cols;
  float* out_row = out + row * p.cols;
  float local_max = -FLT_MAX;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) local_max = fmaxf(local_max, x_row[c]);
  const float max_value = block_max(local_max, scratch);
  float local_sum = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float e = expf(x_row[c] - max_value);
    if (fabsf(e) < FLT_MIN) e = 0.0f;
    out_row[c] = e;
    local_sum += e;
  }
  const float inverse = 1.0f / block_sum(local_sum, scratch);
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) out_row[c] *= inverse;
}

// dx = y * (dy - sum(dy * y))
__global__ void softmax_backward_kernel(SoftmaxParams p, const float* dout, const float* out, float* dx) {
  __shared__ float scratch[kSoftmaxThreads / 32];
  const int64_t row = blockIdx.x;
  const float* y = out + row * p.cols;
  const float* dy = dout + row * p.cols;
  float local = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) local += dy[c] * y[c];
  const float dot = block_sum(local, scratch);
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) dx[row * p.cols + c] = y[c] * (dy[c] - dot);
}

// --- launchers (kernels/launch.h): one block per row -------------------------------------------

template <typename Launch>
void launch_softmax_forward(const Launch& launch, const SoftmaxParams& p, const float* x, float* out) {
  if (p.rows > 0) launch(softmax_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kSoftmaxThreads), 0, p, x, out);
}
template <typename Launch>
void launch_softmax_backward(const Launch& launch, const SoftmaxParams& p, const float* dout, const float* out,
                             float* dx) {
  if (p.rows > 0) {
    launch(softmax_backward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kSoftmaxThreads), 0, p, dout, out, dx);
  }
}

}  // namespace la3::kernels
