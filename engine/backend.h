// The device backend interface: one virtual method per kernel an op needs.
//
// An op (engine/ops/<op>.cc) validates its tensors, allocates outputs, and calls
// backend_for(device).<op>_forward/_backward with raw pointers and a kernels/op_params.h
// struct. The kernel methods and their contracts are the op list, engine/backend_ops.h;
// this class declares them pure virtual from it and adds the hand-written members (copies,
// synchronisation, GEMM precision, bf16 weight copies). Each backend implements every op:
// CpuBackend in engine/cpu/<op>_cpu.cc, the CUDA backends (real and SIMT-emulated, the same
// source) in engine/cuda/<op>_cuda.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "kernels/decoding_params.h"
#include "kernels/op_params.h"

namespace la3 {

// How a backend runs GEMMs (what torch.backends.cuda.matmul settings choose).
enum class GemmPrecision {
  // bf16 operands, fp32 accumulation and output: the training default of the CUDA backends
  // (docs/CUDA.md, Precision). cuda-emu rounds the operands to bf16 the same way before its
  // CPU GEMM.
  kBf16,
  // fp32 operands and accumulation (no TF32): what the CPU backend always does; on the CUDA
  // backends, for exact comparisons.
  kFp32,
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;

  // --- memory ---------------------------------------------------------------------------
  // Copies between host memory and this backend's memory, and within it. They are ordered
  // after every kernel queued before them; copy_to_host returns when the bytes are on the
  // host. The defaults are memcpy, right for backends whose memory the host can address.
  virtual void copy_to_host(void* host_dst, const void* device_src, size_t bytes);
  virtual void copy_from_host(void* device_dst, const void* host_src, size_t bytes);
  virtual void copy_on_device(void* device_dst, const void* device_src, size_t bytes);
  // An upload the host does not wait for: it is queued in order with the backend's other work
  // and may still be pending on return. host_src must not change until the backend's next
  // synchronisation (synchronize(), copy_to_host); host_owner (what owns host_src) is held until
  // then, so the memory cannot be freed under the queued copy. The default is copy_from_host.
  virtual void copy_from_host_async(void* device_dst, const void* host_src, size_t bytes,
                                    std::shared_ptr<const void> host_owner);
  // Waits for all queued work (no-op on the CPU).
  virtual void synchronize() {}
  // The CPU backend is fp32 only and ignores this.
  virtual void set_gemm_precision(GemmPrecision /*precision*/) {}
  virtual GemmPrecision gemm_precision() const { return GemmPrecision::kFp32; }

  // --- kernels: one pure virtual method per entry of the op list ------------------------
#define LA3_BACKEND_OP(return_type, name, parameters) virtual return_type name parameters = 0;
#include "engine/backend_ops.h"

  // The sum of squares over several buffers (the global gradient norm over every parameter).
  // The default adds the single-buffer sums; the CUDA backends queue every reduction and read
  // the partials back with one copy (one synchronisation per step instead of one per tensor).
  struct Span {
    const float* data;
    int64_t count;
  };
  virtual double sum_of_squares(const std::vector<Span>& spans) {
    double sum = 0.0;
    for (const Span& span : spans) sum += sum_of_squares(span.count, span.data);
    return sum;
  }
  // The same reduction left on the device: queues it and writes partial sums into
  // `partials` (device memory of this backend, sum_of_squares_partial_count(spans) doubles)
  // without synchronising; their sum in index order is sum_of_squares(spans) exactly. A
  // trainer copies them back together with its loss: one synchronisation per step for both.
  // The default (host-accessible memory) writes the one total.
  virtual int64_t sum_of_squares_partial_count(const std::vector<Span>& /*spans*/) const { return 1; }
  virtual void sum_of_squares_partials(const std::vector<Span>& spans, double* partials) {
    partials[0] = sum_of_squares(spans);
  }

  // --- bf16 weight copies ---------------------------------------------------------------
  // `copy` holds the bf16 rounding of the fp32 `master` (count elements) and the caller keeps
  // it so (AdamW writes both in one pass). A bf16 GEMM whose operand lies inside `master` reads
  // the copy instead of casting the operand again: the same bits, 2 bytes per element read
  // instead of 4 read + 2 written + 2 read. Registering the same master again replaces the
  // copy. Backends without bf16 GEMMs ignore this.
  virtual void register_bf16_copy(const float* /*master*/, const uint16_t* /*copy*/, int64_t /*count*/) {}
  virtual void unregister_bf16_copy(const float* /*master*/) {}
  // How many GEMM operands were cast to bf16, and how many were read from a registered copy,
  // since the backend was created (for tests and benchmarks).
  struct GemmOperandCounts {
    int64_t cast = 0;
    int64_t from_copy = 0;
  };
  virtual GemmOperandCounts gemm_operand_counts() const { return {}; }

  // Bytes copied from this device to the host by copy_to_host since the backend was created
  // (for tests and benchmarks; 0 on backends whose memory the host addresses directly).
  virtual uint64_t device_to_host_bytes() const { return 0; }
};

// The backend of a device; throws EngineError(kUnimplemented) when it is not available.
Backend& backend_for(Device device);

// Installs a backend (not owned; lives for the whole process). The CPU backend is built in.
void register_backend(DeviceType type, Backend* backend);

}  // namespace la3
