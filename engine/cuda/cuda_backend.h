// The CUDA backend: one host-code source for two devices.
//
// engine/cuda/*.cc holds the backend's host code: launch configurations, workspace and
// buffer handling, copies, GEMM dispatch. nvcc compiles it (through generated .cu wrappers)
// into the `cuda` device: real runtime, one stream per device, a caching allocator over
// cudaMalloc, cuBLASLt for GEMMs. g++ compiles the same files into the `cuda-emu` device:
// the runtime is kernels/simt/runtime.h (device memory = host memory, checked bounds), the
// kernels run on fibers, and the GEMM is the CPU reference fed the same bf16-rounded
// operands cuBLASLt would get. The two compiled copies live in different namespaces
// (cuda_device / cuda_emu) so one binary can hold both.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/backend.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_runtime_api.h"

#if defined(__CUDACC__)
#define LA3_CUDA_FLAVOUR cuda_device
#else
#define LA3_CUDA_FLAVOUR cuda_emu
#endif

namespace la3::LA3_CUDA_FLAVOUR {

class DeviceScratch;  // below
class GemmEngine;  // cuBLASLt (cuda) or the CPU stand-in (cuda-emu); engine/cuda/gemm_cuda.cc

class CudaBackend final : public Backend {
 public:
  // Binds the device, creates the stream, the allocator and the GEMM engine; throws
  // EngineError when the runtime refuses (no device, no driver).
  CudaBackend(DeviceType type, int ordinal);
  ~CudaBackend() override;

  Device device() const override { return Device{type_, ordinal_}; }
  std::string name() const override;
  CachingAllocator& allocator() { return *allocator_; }
  cudaStream_t stream() const { return stream_; }
  void set_gemm_precision(GemmPrecision precision) override { precision_ = precision; }
  GemmPrecision gemm_precision() const override { return precision_; }

  void copy_to_host(void* host_dst, const void* device_src, size_t bytes) override;
  void copy_from_host(void* device_dst, const void* host_src, size_t bytes) override;
  void copy_on_device(void* device_dst, const void* device_src, size_t bytes) override;
  void synchronize() override;

  void gemm(const kernels::GemmParams& p, const float* a, const float* b, float* c) override;
  void add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) override;
  void add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) override;
  void mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) override;
  void mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b, float* da, float* db) override;
  void scale(int64_t count, float alpha, const float* x, float* out) override;
  void axpy(int64_t count, float alpha, const float* x, float* y) override;
  void fill(int64_t count, float value, float* out) override;
  void relu_forward(int64_t count, const float* x, float* out) override;
  void relu_backward(int64_t count, const float* dout, const float* x, float* dx) override;
  void gelu_new_forward(int64_t count, const float* x, float* out) override;
  void gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) override;
  void gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) override;
  void gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear, float* dgate, float* dlinear) override;
  void rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out, float* rstd) override;
  void rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x, const float* weight, const float* rstd, float* dx, float* dweight) override;
  void add_rmsnorm_forward(const kernels::RmsNormParams& p, const float* residual, const float* branch, const float* weight, float* sum, float* out, float* rstd) override;
  void rmsnorm_forward_bf16(const kernels::RmsNormParams& p, const uint16_t* x, const uint16_t* branch, const float* weight, uint16_t* sum, uint16_t* out, float* rstd) override;
  void rmsnorm_backward_bf16(const kernels::RmsNormParams& p, const uint16_t* dout, const uint16_t* x, const float* weight, const float* rstd, uint16_t* dx, float* dweight) override;
  void softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) override;
  void softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx) override;
  void attention_forward(const kernels::AttentionParams& p, const float* q, const float* k, const float* v, const float* bias_table, const int32_t* key_mask, float* out, float* probs) override;
  void attention_backward(const kernels::AttentionParams& p, const float* dout, const float* q, const float* k, const float* v, const float* out, const float* bias_table, const int32_t* key_mask, const float* probs, float* dq, float* dk, float* dv, float* dbias_table) override;
  void embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table, float* out) override;
  void embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout, float* dtable) override;
  void dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) override;
  void cross_entropy_forward(const kernels::CrossEntropyParams& p, const float* logits, const int64_t* labels, float* row_loss, float* row_lse) override;
  void cross_entropy_backward(const kernels::CrossEntropyParams& p, const float* logits, const int64_t* labels, const float* row_lse, const float* row_weight, float* dlogits) override;
  double sum_of_squares(int64_t count, const float* x) override;
  double sum_of_squares(const std::vector<Span>& spans) override;
  int64_t sum_of_squares_partial_count(const std::vector<Span>& spans) const override;
  void sum_of_squares_partials(const std::vector<Span>& spans, double* partials) override;
  void caption_loss_log_probs(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, float* log_prob, float* lse) override;
  void caption_loss_mean_fused(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, float* log_prob, float* inverse_tokens, float* dlogits) override;
  void caption_loss_combine(const kernels::CaptionLossParams& p, const float* log_prob, const int64_t* labels, const int64_t* group, float* token_weight, float* loss, float* inverse_tokens) override;
  void caption_loss_backward(const kernels::CaptionLossParams& p, const float* logits, const int64_t* labels, const float* lse, const float* token_weight, const float* upstream, const float* inverse_tokens, float* dlogits) override;
  void sum_to_scalar(int64_t count, const float* x, double alpha, float* out) override;
  void scale_by_device_scalar(int64_t count, const float* scalar, float* x) override;
  void register_bf16_copy(const float* master, const uint16_t* copy, int64_t count) override;
  void unregister_bf16_copy(const float* master) override;
  GemmOperandCounts gemm_operand_counts() const override;
  void adamw_step(const kernels::AdamWParams& p, float* param, const float* grad, float* exp_avg, float* exp_avg_sq, uint16_t* param_bf16) override;
  void cast_to_bf16(int64_t count, const float* in, uint16_t* out) override;

 private:
  DeviceType type_;
  int ordinal_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CachingAllocator> allocator_;
  std::unique_ptr<GemmEngine> gemm_engine_;
  GemmPrecision precision_ = GemmPrecision::kBf16;
  // The bf16 operand of a GEMM: a registered copy covering [operand, operand + span), or a
  // fresh cast into `scratch`.
  const uint16_t* bf16_operand(const float* operand, int64_t span, std::unique_ptr<DeviceScratch>& scratch);
  struct Bf16Copy {
    const uint16_t* copy;
    int64_t count;
  };
  mutable std::mutex bf16_copies_mutex_;
  std::map<const float*, Bf16Copy, std::less<>> bf16_copies_;  // by master address
  GemmOperandCounts operand_counts_;
};

// Device scratch memory from the backend's caching allocator, returned when it goes out of
// scope (stream order makes the reuse safe; see caching_allocator.h).
class DeviceScratch {
 public:
  DeviceScratch(CachingAllocator& allocator, size_t bytes)
      : allocator_(allocator), bytes_(bytes), pointer_(allocator.allocate(bytes)) {}
  ~DeviceScratch() { allocator_.deallocate(pointer_, bytes_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(pointer_);
  }

 private:
  CachingAllocator& allocator_;
  size_t bytes_;
  void* pointer_;
};

}  // namespace la3::LA3_CUDA_FLAVOUR
