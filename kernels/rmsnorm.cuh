// T5 RMSNorm kernels (f32 in/out, f32 statistics): the CUDA counterpart of
// engine/cpu/rmsnorm_cpu.cc. nvcc compiles them for the GPU; g++ runs the same source under
// the SIMT emulation, where tests compare them with the CPU backend.
//
// Forward: one block per row; the block's threads stride over the row, reduce the sum of
// squares with warp shuffles and one warp over the per-warp partials, then normalise.
// Backward: dx one block per row (the same reduction for sum(w * dout * x)); dweight one
// thread per column looping over rows, so the sum order is fixed (deterministic, no atomics).
#pragma once

#include <cstdint>

#include "kernels/block_reduce.cuh"
#include "kernels/op_params.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kRmsNormThreads = 256;  // a multiple of 32, at most 1024

__global__ void rmsnorm_forward_kernel(RmsNormParams p, const float* x, const float* weight, float* out, float* rstd) {
  __shared__ float scratch[kRmsNormThreads / 32];
  const int64_t row = blockIdx.x;
  const float* x_row = x + row * p.cols;
  float* out_row = out + row * p.cols;
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) sum_squares += x_row[c] * x_row[c];
  const float total = block_sum(sum_squares, scratch);
  const float r = rsqrtf(total / static_cast<float>(p.cols) + p.eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) out_row[c] = weight[c] * (x_row[c] * r);
}

// dx = r w dout - x r^3 mean(w dout x)
__global__ void rmsnorm_backward_dx_kernel(RmsNormParams p, const float* dout, const float* x, const float* weight,
                                           const float* rstd, float* dx) {
  __shared__ float scratch[kRmsNormThreads / 32];
  const int64_t row = blockIdx.x;
  const float* x_row = x + row * p.cols;
  const float* dout_row = dout + row * p.cols;
  float partial = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) partial += weight[c] * dout_row[c] * x_row[c];
  const float dot = block_sum(partial, scratch);
  const float r = rstd[row];
  const float correction = dot / static_cast<float>(p.cols) * r * r * r;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    dx[row * p.cols + c] = r * weight[c] * dout_row[c] - x_row[c] * correction;
  }
}

// dweight[c] += sum over rows of dout x r (accumulates, as the backend contract says).
__global__ void rmsnorm_backward_dweight_kernel(RmsNormParams p, const float* dout, const float* x, const float* rstd,
                                                float* dweight) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= p.cols) return;
  float sum = 0.0f;
  for (int64_t row = 0; row < p.rows; ++row) sum += dout[row * p.cols + c] * x[row * p.cols + c] * rstd[row];
  dweight[c] += sum;
}

}  // namespace la3::kernels
