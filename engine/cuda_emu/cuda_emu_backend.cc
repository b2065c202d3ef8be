#include "engine/cuda_emu/cuda_emu_backend.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/attention.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/pointwise.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/softmax.cuh"

namespace la3 {

namespace {

// Host memory standing in for device memory.
class CudaEmuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    void* pointer = std::aligned_alloc(256, ((bytes + 255) / 256) * 256 + (bytes == 0 ? 256 : 0));
    if (pointer == nullptr) Fail(ErrorKind::kResourceExhausted, "cuda-emu allocator: out of memory for ", bytes, " bytes");
    note_allocated(bytes);
    return pointer;
  }
  void deallocate(void* pointer, size_t bytes) override {
    std::free(pointer);
    note_freed(bytes);
  }
  bool host_accessible() const override { return true; }
};

dim3 pointwise_grid(int64_t count) {
  const int64_t blocks = (count + kernels::kPointwiseThreads - 1) / kernels::kPointwiseThreads;
  return dim3(static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 1024)));
}
const dim3 kPointwiseBlock(kernels::kPointwiseThreads);

Backend& cpu_reference() { return backend_for(Device::cpu()); }

}  // namespace

Device CudaEmuBackend::device() const { return Device{DeviceType::kCudaEmu, 0}; }
std::string CudaEmuBackend::name() const { return "cuda-emu (SIMT emulation, CPU GEMM)"; }

void CudaEmuBackend::gemm(const kernels::GemmParams& p, const float* a, const float* b, float* c) {
  cpu_reference().gemm(p, a, b, c);
}

void CudaEmuBackend::add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  if (p.count == 0) return;
  simt::launch(kernels::add_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, nullptr, p, a, b, out);
}
void CudaEmuBackend::add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) {
    simt::launch(kernels::binary_backward_a_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, nullptr, p, dout,
                 static_cast<const float*>(nullptr), da);
  }
  if (db != nullptr) {
    simt::launch(kernels::binary_backward_b_kernel, pointwise_grid(p.b_period), kPointwiseBlock, 0, nullptr, p, dout,
                 static_cast<const float*>(nullptr), db);
  }
}
void CudaEmuBackend::mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  if (p.count == 0) return;
  simt::launch(kernels::mul_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, nullptr, p, a, b, out);
}
void CudaEmuBackend::mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b,
                                  float* da, float* db) {
  if (p.count == 0) return;
  if (da != nullptr) simt::launch(kernels::binary_backward_a_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, nullptr, p, dout, b, da);
  if (db != nullptr) simt::launch(kernels::binary_backward_b_kernel, pointwise_grid(p.b_period), kPointwiseBlock, 0, nullptr, p, dout, a, db);
}
void CudaEmuBackend::scale(int64_t count, float alpha, const float* x, float* out) {
  if (count > 0) simt::launch(kernels::scale_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, alpha, x, out);
}
void CudaEmuBackend::axpy(int64_t count, float alpha, const float* x, float* y) {
  if (count > 0) simt::launch(kernels::axpy_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, alpha, x, y);
}
void CudaEmuBackend::fill(int64_t count, float value, float* out) {
  if (count > 0) simt::launch(kernels::fill_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, value, out);
}
void CudaEmuBackend::relu_forward(int64_t count, const float* x, float* out) {
  if (count > 0) simt::launch(kernels::relu_forward_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, x, out);
}
void CudaEmuBackend::relu_backward(int64_t count, const float* dout, const float* x, float* dx) {
  if (count > 0) simt::launch(kernels::relu_backward_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, dout, x, dx);
}
void CudaEmuBackend::gelu_new_forward(int64_t count, const float* x, float* out) {
  if (count > 0) simt::launch(kernels::gelu_new_forward_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, x, out);
}
void CudaEmuBackend::gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) {
  if (count > 0) simt::launch(kernels::gelu_new_backward_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, dout, x, dx);
}
void CudaEmuBackend::gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) {
  if (count > 0) simt::launch(kernels::gated_gelu_forward_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, gate, linear, out);
}
void CudaEmuBackend::gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear,
                                         float* dgate, float* dlinear) {
  if (count == 0) return;
  // The kernel writes both gradients; route an unwanted one to scratch.
  std::vector<float> scratch(dgate == nullptr || dlinear == nullptr ? static_cast<size_t>(count) : 0);
  simt::launch(kernels::gated_gelu_backward_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, count, dout, gate,
               linear, dgate != nullptr ? dgate : scratch.data(), dlinear != nullptr ? dlinear : scratch.data());
}
void CudaEmuBackend::rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out,
                                     float* rstd) {
  if (p.rows == 0) return;
  simt::launch(kernels::rmsnorm_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kRmsNormThreads), 0,
               nullptr, p, x, weight, out, rstd);
}
void CudaEmuBackend::rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x,
                                      const float* weight, const float* rstd, float* dx, float* dweight) {
  if (p.rows == 0) return;
  simt::launch(kernels::rmsnorm_backward_dx_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kRmsNormThreads),
               0, nullptr, p, dout, x, weight, rstd, dx);
  if (dweight != nullptr) {
    simt::launch(kernels::rmsnorm_backward_dweight_kernel,
                 dim3(static_cast<unsigned>((p.cols + kernels::kRmsNormThreads - 1) / kernels::kRmsNormThreads)),
                 dim3(kernels::kRmsNormThreads), 0, nullptr, p, dout, x, rstd, dweight);
  }
}
void CudaEmuBackend::softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) {
  if (p.rows > 0) simt::launch(kernels::softmax_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kSoftmaxThreads), 0, nullptr, p, x, out);
}
void CudaEmuBackend::softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx) {
  if (p.rows > 0) simt::launch(kernels::softmax_backward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kSoftmaxThreads), 0, nullptr, p, dout, out, dx);
}

// The saved "probs" buffer of the backend contract ([batch, heads, q_len, k_len]) holds the
// kernels' row log-sum-exp in its first batch * heads * q_len floats: the CUDA kernels
// recompute the probabilities instead of storing them.
void CudaEmuBackend::attention_forward(const kernels::AttentionParams& p, const float* q, const float* k, const float* v,
                                       const float* bias_table, const int32_t* key_mask, float* out, float* probs) {
  if (p.batch * p.heads * p.q_len == 0) return;
  if (p.k_len == 0) Fail(ErrorKind::kInvalidArgument, "cuda-emu attention: no keys");
  const dim3 grid(static_cast<unsigned>(p.q_len), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  simt::launch(kernels::attention_forward_kernel, grid, dim3(kernels::kAttentionThreads),
               static_cast<size_t>(p.k_len) * sizeof(float), nullptr, p, q, k, v, bias_table, key_mask, out, probs);
}
void CudaEmuBackend::attention_backward(const kernels::AttentionParams& p, const float* dout, const float* q,
                                        const float* k, const float* v, const float* bias_table,
                                        const int32_t* key_mask, const float* probs, float* dq, float* dk, float* dv,
                                        float* dbias_table) {
  if (p.batch * p.heads * p.q_len == 0) return;
  const int64_t kv = p.batch * p.k_len * p.heads * p.head_dim;
  fill(kv, 0.0f, dk);
  fill(kv, 0.0f, dv);
  const dim3 grid(static_cast<unsigned>(p.q_len), static_cast<unsigned>(p.heads), static_cast<unsigned>(p.batch));
  simt::launch(kernels::attention_backward_kernel, grid, dim3(kernels::kAttentionThreads),
               2 * static_cast<size_t>(p.k_len) * sizeof(float), nullptr, p, dout, q, k, v, bias_table, key_mask, probs,
               dq, dk, dv, dbias_table);
}

void CudaEmuBackend::embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table,
                                       float* out) {
  if (p.count > 0) simt::launch(kernels::embedding_forward_kernel, dim3(static_cast<unsigned>(p.count)), dim3(64), 0, nullptr, p, ids, table, out);
}
void CudaEmuBackend::embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout,
                                        float* dtable) {
  if (p.count > 0) simt::launch(kernels::embedding_backward_kernel, dim3(static_cast<unsigned>(p.count)), dim3(64), 0, nullptr, p, ids, dout, dtable);
}
void CudaEmuBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) {
  if (count > 0) simt::launch(kernels::dropout_kernel, pointwise_grid(count), kPointwiseBlock, 0, nullptr, p, count, x, out);
}
void CudaEmuBackend::cross_entropy_forward(const kernels::CrossEntropyParams& p, const float* logits,
                                           const int64_t* labels, float* row_loss, float* row_lse) {
  if (p.rows > 0) simt::launch(kernels::cross_entropy_forward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kCrossEntropyThreads), 0, nullptr, p, logits, labels, row_loss, row_lse);
}
void CudaEmuBackend::cross_entropy_backward(const kernels::CrossEntropyParams& p, const float* logits,
                                            const int64_t* labels, const float* row_lse, const float* row_weight,
                                            float* dlogits) {
  if (p.rows > 0) simt::launch(kernels::cross_entropy_backward_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kCrossEntropyThreads), 0, nullptr, p, logits, labels, row_lse, row_weight, dlogits);
}
void CudaEmuBackend::adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg,
                                float* exp_avg_sq) {
  if (p.count > 0) simt::launch(kernels::adamw_kernel, pointwise_grid(p.count), kPointwiseBlock, 0, nullptr, kernels::adamw_scalars(p), p.count, param, grad, exp_avg, exp_avg_sq);
}

void register_cuda_emu_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CudaEmuAllocator allocator;
    static CudaEmuBackend backend;
    register_allocator(DeviceType::kCudaEmu, &allocator);
    register_backend(DeviceType::kCudaEmu, &backend);
  });
}

}  // namespace la3
