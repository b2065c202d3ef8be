// T5 RMSNorm kernels: the CUDA counterpart of engine/cpu/rmsnorm_cpu.cc. nvcc compiles them
// for the GPU; g++ runs the same source under the SIMT emulation, where tests compare them
// with the CPU backend.
//
// Activations are stored as `Io` = float or bf16 (uint16_t bits, kernels/bf16.cuh); the
// weight, the statistics (rstd) and dweight are always fp32, and every sum is fp32.
//
// Forward: one block per row; the block's threads stride over the row, reduce the sum of
// squares with warp shuffles and one warp over the per-warp partials, then normalise. It can
// fuse the residual add that precedes every T5 pre-norm: sum = residual + branch is written
// (the new residual stream) and normalised in the same pass, so the row is read from global
// memory twice (residual and branch) instead of five times (add: 2 + write; norm: 2 reads).
// Backward: dx one block per row (the same reduction for sum(w * dout * x)); dweight in two
// deterministic stages: partial column sums over fixed chunks of rows (a 2-D grid that fills
// the GPU even when cols = d_model is only 2 blocks wide), then one thread per column adds
// the chunks in chunk order. No atomics, so the result does not depend on scheduling.
#pragma once

#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/block_reduce.cuh"
#include "kernels/op_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

constexpr unsigned int kRmsNormThreads = 256;  // a multiple of 32, at most 1024
// Rows per partial column sum of dweight: 8192 rows (batch 16 x 512 tokens) at d_model 512
// make 128 x 2 blocks.
constexpr int64_t kRmsNormDweightRowsPerChunk = 64;

// Loads and stores of Io are kernels/bf16.cuh's load_act / store_act.
// The value an Io store keeps (so a fused add normalises exactly what the unfused norm reads).
__device__ __forceinline__ float stored_value(const float*, float v) { return v; }
__device__ __forceinline__ float stored_value(const uint16_t*, float v) { return round_to_bf16(v); }

inline int64_t rmsnorm_dweight_chunks(int64_t rows) {
  return (rows + kRmsNormDweightRowsPerChunk - 1) / kRmsNormDweightRowsPerChunk;
}

// out = weight * (h * rstd) with h = x, or h = x + branch when `branch` is not null; then
// `sum` (when not null) receives h. rstd [rows] is saved for backward.
template <typename Io>
__global__ void rmsnorm_forward_kernel(RmsNormParams p, const Io* x, const Io* branch, const float* weight, Io* sum,
                                       Io* out, float* rstd) {
  LA3_SHARED(float, scratch, [kRmsNormThreads / 32]);
  const int64_t row_start = static_cast<int64_t>(blockIdx.x) * p.cols;
  float sum_squares = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    float h = load_act(x, row_start + c);
    if (branch != nullptr) {
      h = stored_value(x, h + load_act(branch, row_start + c));
      if (sum != nullptr) store_act(sum, row_start + c, h);
    }
    sum_squares += h * h;
  }
  const float total = block_sum(sum_squares, scratch);
  const float r = rsqrtf(total / static_cast<float>(p.cols) + p.eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    // The same thread wrote sum[c] above: reading it back is ordered (and an L1/L2 hit).
    const float h = branch == nullptr ? load_act(x, row_start + c)
                    : sum != nullptr  ? load_act(sum, row_start + c)
                                      : stored_value(x, load_act(x, row_start + c) + load_act(branch, row_start + c));
    // transformers: weight * (x * rsqrt(variance + eps)), in this order.
    store_act(out, row_start + c, weight[c] * (h * r));
  }
}

// dx = r w dout - x r^3 mean(w dout x)
template <typename Io>
__global__ void rmsnorm_backward_dx_kernel(RmsNormParams p, const Io* dout, const Io* x, const float* weight,
                                           const float* rstd, Io* dx) {
  LA3_SHARED(float, scratch, [kRmsNormThreads / 32]);
  const int64_t row_start = static_cast<int64_t>(blockIdx.x) * p.cols;
  float partial = 0.0f;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    partial += weight[c] * load_act(dout, row_start + c) * load_act(x, row_start + c);
  }
  const float dot = block_sum(partial, scratch);
  const float r = rstd[blockIdx.x];
  const float correction = dot / static_cast<float>(p.cols) * r * r * r;
  for (int64_t c = threadIdx.x; c < p.cols; c += blockDim.x) {
    store_act(dx, row_start + c,
              r * weight[c] * load_act(dout, row_start + c) - load_act(x, row_start + c) * correction);
  }
}

// Stage 1 of dweight: partial[chunk, c] = sum over the chunk's rows of dout x r.
// Grid: (ceil(cols / blockDim.x), chunks).
template <typename Io>
__global__ void rmsnorm_dweight_partial_kernel(RmsNormParams p, const Io* dout, const Io* x, const float* rstd,
                                               float* partial) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= p.cols) return;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * kRmsNormDweightRowsPerChunk;
  const int64_t last = first + kRmsNormDweightRowsPerChunk < p.rows ? first + kRmsNormDweightRowsPerChunk : p.rows;
  float sum = 0.0f;
  for (int64_t row = first; row < last; ++row) {
    sum += load_act(dout, row * p.cols + c) * load_act(x, row * p.cols + c) * rstd[row];
  }
  partial[static_cast<int64_t>(blockIdx.y) * p.cols + c] = sum;
}

// Stage 2: dweight[c] += sum over chunks (in chunk order) of partial[chunk, c] (accumulates,
// as the backend contract says).
__global__ void rmsnorm_dweight_reduce_kernel(int64_t chunks, int64_t cols, const float* partial, float* dweight) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float sum = 0.0f;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) sum += partial[chunk * cols + c];
  dweight[c] += sum;
}

// --- launchers (kernels/launch.h) ---------------------------------------------------------------

// One block per row. x alone, or the fused residual add (branch and sum not null).
template <typename Io, typename Launch>
void launch_rmsnorm_forward(const Launch& launch, const RmsNormParams& p, const Io* x, const Io* branch,
                            const float* weight, Io* sum, Io* out, float* rstd) {
  if (p.rows == 0) return;
  launch(rmsnorm_forward_kernel<Io>, dim3(static_cast<unsigned>(p.rows)), dim3(kRmsNormThreads), 0, p, x, branch,
         weight, sum, out, rstd);
}

// Scratch of the backward launch: the dweight column partials, [chunks, cols].
inline int64_t rmsnorm_backward_scratch_floats(const RmsNormParams& p) {
  return rmsnorm_dweight_chunks(p.rows) * p.cols;
}
// The dweight partial grid's second dimension is one block per chunk of rows (gridDim.y <= 65535).
inline bool rmsnorm_backward_fits(const RmsNormParams& p) { return rmsnorm_dweight_chunks(p.rows) <= 65535; }

// dx (one block per row), then, when dweight is not null, the deterministic two-stage dweight:
// column partials over chunks of kRmsNormDweightRowsPerChunk rows into `partial`
// (rmsnorm_backward_scratch_floats), then their sum in chunk order, added to dweight.
template <typename Io, typename Launch>
void launch_rmsnorm_backward(const Launch& launch, const RmsNormParams& p, const Io* dout, const Io* x,
                             const float* weight, const float* rstd, Io* dx, float* dweight, float* partial) {
  if (p.rows == 0) return;
  launch(rmsnorm_backward_dx_kernel<Io>, dim3(static_cast<unsigned>(p.rows)), dim3(kRmsNormThreads), 0, p, dout, x,
         weight, rstd, dx);
  if (dweight == nullptr || p.cols == 0) return;
  const int64_t chunks = rmsnorm_dweight_chunks(p.rows);
  const unsigned column_blocks = static_cast<unsigned>((p.cols + kRmsNormThreads - 1) / kRmsNormThreads);
  launch(rmsnorm_dweight_partial_kernel<Io>, dim3(column_blocks, static_cast<unsigned>(chunks)), dim3(kRmsNormThreads),
         0, p, dout, x, rstd, partial);
  launch(rmsnorm_dweight_reduce_kernel, dim3(column_blocks), dim3(kRmsNormThreads), 0, chunks, p.cols,
         static_cast<const float*>(partial), dweight);
}

}  // namespace la3::kernels
