// CudaBackend: elementwise arithmetic, activations, dropout and the AdamW update (kernels/pointwise.cuh).
#include <algorithm>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/pointwise.cuh"
#include "kernels/reduce.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {

dim3 pointwise_grid(int64_t count) {
  const int64_t blocks = (count + kernels::kPointwiseThreads - 1) / kernels::kPointwiseThreads;
  return dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 1024)));
}
const dim3 kPointwiseBlock(kernels::kPointwiseThreads);

}  // namespace

void CudaBackend::add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  if (p.count == 0) return;
  launch_kernel(kernels::add_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, stream_, p, a, b, out);
}
void CudaBackend::add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) {
    launch_kernel(kernels::binary_backward_a_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, stream_, p, dout,
                 static_cast<const float*>(nullptr), da);
  }
  if (db != nullptr) {
    launch_kernel(kernels::binary_backward_b_kernel, pointwise_grid(p.b_period), kPointwiseBlock, 0, stream_, p, dout,
                 static_cast<const float*>(nullptr), db);
  }
}
void CudaBackend::mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  if (p.count == 0) return;
  launch_kernel(kernels::mul_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, stream_, p, a, b, out);
}
void CudaBackend::mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b,
                                  float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) launch_kernel(kernels::binary_backward_a_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, stream_, p, dout, b, da);
  if (db != nullptr) launch_kernel(kernels::binary_backward_b_kernel, pointwise_grid(p.b_period), kPointwiseBlock, 0, stream_, p, dout, a, db);
}
void CudaBackend::scale(int64_t count, float alpha, const float* x, float* out) {
  if (count > 0) launch_kernel(kernels::scale_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, alpha, x, out);
}
void CudaBackend::axpy(int64_t count, float alpha, const float* x, float* y) {
  if (count > 0) launch_kernel(kernels::axpy_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, alpha, x, y);
}
void CudaBackend::fill(int64_t count, float value, float* out) {
  if (count > 0) launch_kernel(kernels::fill_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, value, out);
}
void CudaBackend::relu_forward(int64_t count, const float* x, float* out) {
  if (count > 0) launch_kernel(kernels::relu_forward_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, x, out);
}
void CudaBackend::relu_backward(int64_t count, const float* dout, const float* x, float* dx) {
  if (count > 0) launch_kernel(kernels::relu_backward_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, dout, x, dx);
}
void CudaBackend::gelu_new_forward(int64_t count, const float* x, float* out) {
  if (count > 0) launch_kernel(kernels::gelu_new_forward_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, x, out);
}
void CudaBackend::gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) {
  if (count > 0) launch_kernel(kernels::gelu_new_backward_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, dout, x, dx);
}
void CudaBackend::gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) {
  if (count > 0) launch_kernel(kernels::gated_gelu_forward_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, gate, linear, out);
}
void CudaBackend::gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear,
                                         float* dgate, float* dlinear) {
  if (count == 0) return;
  // The kernel writes both gradients; route an unwanted one to device scratch.
  DeviceScratch scratch(*allocator_, dgate == nullptr || dlinear == nullptr ? static_cast<size_t>(count) * sizeof(float) : 0);
  launch_kernel(kernels::gated_gelu_backward_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, count, dout, gate,
                linear, dgate != nullptr ? dgate : scratch.as<float>(), dlinear != nullptr ? dlinear : scratch.as<float>());
}
void CudaBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) {
  // The kernel divides flat indices by width and positions to find each element's key.
  if (!kernels::dropout_layout_fits(p, count)) {
    Fail(ErrorKind::kInternal, "dropout: ", count, " elements are not whole rows of [positions ", p.positions,
         ", width ", p.width, "]");
  }
  if (count > 0) launch_kernel(kernels::dropout_kernel, pointwise_grid(count), kPointwiseBlock, 0, stream_, p, count, x, out);
}
void CudaBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  if (p.count > 0) {
    launch_kernel(kernels::adamw_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, stream_, kernels::adamw_scalars(p),
                  p.count, param, grad, exp_avg, exp_avg_sq, param_bf16);
  }
}

double CudaBackend::sum_of_squares(int64_t count, const float* x) { return sum_of_squares({Span{x, count}}); }

namespace {
int64_t reduce_blocks(int64_t count) {
  return count == 0 ? 0
                    : std::clamp<int64_t>((count + kernels::kReduceThreads - 1) / kernels::kReduceThreads, 1,
                                          kernels::kReduceMaxBlocks);
}
}  // namespace

int64_t CudaBackend::sum_of_squares_partial_count(const std::vector<Span>& spans) const {
  int64_t total_blocks = 0;
  for (const Span& span : spans) total_blocks += reduce_blocks(span.count);
  return total_blocks;
}

void CudaBackend::sum_of_squares_partials(const std::vector<Span>& spans, double* partials) {
  // Each buffer's blocks write their partial sums into consecutive slots.
  int64_t offset = 0;
  for (const Span& span : spans) {
    const int64_t blocks = reduce_blocks(span.count);
    if (blocks == 0) continue;
    launch_kernel(kernels::sum_of_squares_kernel, dim3(static_cast<unsigned>(blocks)), dim3(kernels::kReduceThreads), 0,
                  stream_, span.count, span.data, partials + offset);
    offset += blocks;
  }
}

double CudaBackend::sum_of_squares(const std::vector<Span>& spans) {
  // One copy brings every partial back (the only synchronisation), and the host adds them
  // in a fixed order.
  const int64_t total_blocks = sum_of_squares_partial_count(spans);
  if (total_blocks == 0) return 0.0;
  DeviceScratch partials(*allocator_, static_cast<size_t>(total_blocks) * sizeof(double));
  sum_of_squares_partials(spans, partials.as<double>());
  std::vector<double> host(static_cast<size_t>(total_blocks));
  copy_to_host(host.data(), partials.as<double>(), host.size() * sizeof(double));
  double sum = 0.0;
  for (double partial : host) sum += partial;
  return sum;
}

}  // namespace la3::LA3_CUDA_FLAVOUR
