// GEMMs of the CUDA backends behind one interface. Under nvcc: cuBLASLt (one handle, a
// workspace from the caching allocator, row-major problems mapped onto column-major ones).
// Under the emulation: the CPU reference GEMM, fed the operands exactly as the GPU would
// see them (bf16-rounded by the same cast kernel in kBf16 mode).
#pragma once

#include <memory>

#include "engine/cuda/cuda_backend.h"

namespace la3::LA3_CUDA_FLAVOUR {

class GemmEngine {
 public:
  GemmEngine(CachingAllocator& allocator, cudaStream_t stream);
  ~GemmEngine();
  GemmEngine(const GemmEngine&) = delete;
  GemmEngine& operator=(const GemmEngine&) = delete;

  // C = alpha op(A) op(B) + beta C with fp32 operands (kFp32) or bf16 ones (uint16_t bf16
  // values: bf16 activations, or the bf16 copies of f32 operands, in the layout p describes).
  // run_fp32 ignores p's types (all f32); run_bf16 writes C of type p.c_type (f32 or bf16; a
  // bf16 C is read as bf16 when beta != 0), accumulating in fp32 either way.
  void run_fp32(const kernels::GemmParams& p, const float* a, const float* b, float* c);
  void run_bf16(const kernels::GemmParams& p, const uint16_t* a, const uint16_t* b, void* c);

  // cuBLASLt descriptors and the chosen algorithm per GEMM shape, built on first use: a
  // training step repeats the same few dozen shapes, and the heuristic query costs more
  // than a small GEMM. Empty under the emulation.
  struct PlanCache;
  using PlanCacheAccess = PlanCache*;

  // Bytes of cuBLASLt workspace (32 MiB, what cuBLAS recommends for Hopper).
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

 private:
  CachingAllocator& allocator_;
  cudaStream_t stream_;
  std::unique_ptr<PlanCache> plans_;
  [[maybe_unused]] void* handle_ = nullptr;  // cublasLtHandle_t under nvcc (unused by the emulation)
  void* workspace_ = nullptr;  // device memory, kWorkspaceBytes
};

// Elements spanned by one operand of a (batched) GEMM as stored: from its first element to
// its last, gaps between rows and batch items included.
int64_t gemm_operand_span(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t batch_stride);

}  // namespace la3::LA3_CUDA_FLAVOUR
