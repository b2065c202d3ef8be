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

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
  void copy_from_host_async(void* device_dst, const void* host_src, size_t bytes,
                            std::shared_ptr<const void> host_owner) override;
  void copy_on_device(void* device_dst, const void* device_src, size_t bytes) override;
  void synchronize() override;

  // The kernel methods (engine/backend_ops.h), one file per op: engine/cuda/<op>_cuda.cc.
#define LA3_BACKEND_OP(return_type, name, parameters) return_type name parameters override;
#include "engine/backend_ops.h"
  double sum_of_squares(const std::vector<Span>& spans) override;
  int64_t sum_of_squares_partial_count(const std::vector<Span>& spans) const override;
  void sum_of_squares_partials(const std::vector<Span>& spans, double* partials) override;
  void register_bf16_copy(const float* master, const uint16_t* copy, int64_t count) override;
  void unregister_bf16_copy(const float* master) override;
  GemmOperandCounts gemm_operand_counts() const override;
  uint64_t device_to_host_bytes() const override { return device_to_host_bytes_.load(); }

 private:
  DeviceType type_;
  int ordinal_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<CachingAllocator> allocator_;
  std::unique_ptr<GemmEngine> gemm_engine_;
  // The owners of the host memory of uploads queued by copy_from_host_async, released once the
  // stream has been synchronised (every copy queued before it is done by then).
  void stream_synchronize_and_release_uploads();
  std::mutex uploads_mutex_;
  std::vector<std::shared_ptr<const void>> pending_uploads_;
  GemmPrecision precision_ = GemmPrecision::kBf16;
  // The bf16 operand of a GEMM: a registered copy covering [operand, operand + span), or a
  // fresh cast into `scratch`.
  const uint16_t* bf16_operand(const float* operand, int64_t span, std::unique_ptr<DeviceScratch>& scratch);
  // C = beta C for a GEMM with k == 0 and a bf16 operand (nothing to multiply).
  void gemm_empty_sum(const kernels::GemmParams& p, void* c);
  struct Bf16Copy {
    const uint16_t* copy;
    int64_t count;
  };
  mutable std::mutex bf16_copies_mutex_;
  std::map<const float*, Bf16Copy, std::less<>> bf16_copies_;  // by master address
  GemmOperandCounts operand_counts_;
  std::atomic<uint64_t> device_to_host_bytes_{0};  // incremental decoding: what a step reads back
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
