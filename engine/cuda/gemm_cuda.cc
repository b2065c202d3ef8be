// CudaBackend::gemm and the GemmEngine (see gemm_engine.h).
#include <algorithm>
#include <array>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/gemm_engine.h"
#include "engine/error.h"

#if defined(__CUDACC__)
#include <cublasLt.h>
#endif

// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/cast.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

int64_t gemm_operand_span(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t batch_stride) {
  if (rows == 0 || cols == 0 || batch == 0) return 0;
  return (batch - 1) * batch_stride + (rows - 1) * ld + cols;
}

namespace {

struct OperandSpans {
  int64_t a = 0, b = 0, c = 0;
};

OperandSpans spans_of(const kernels::GemmParams& p) {
  OperandSpans s;
  s.a = gemm_operand_span(p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p.lda, p.batch, p.stride_a);
  s.b = gemm_operand_span(p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p.ldb, p.batch, p.stride_b);
  s.c = gemm_operand_span(p.m, p.n, p.ldc, p.batch, p.stride_c);
  return s;
}

}  // namespace

void CudaBackend::register_bf16_copy(const float* master, const uint16_t* copy, int64_t count) {
  std::lock_guard<std::mutex> lock(bf16_copies_mutex_);
  bf16_copies_[master] = Bf16Copy{copy, count};
}

void CudaBackend::unregister_bf16_copy(const float* master) {
  std::lock_guard<std::mutex> lock(bf16_copies_mutex_);
  bf16_copies_.erase(master);
}

Backend::GemmOperandCounts CudaBackend::gemm_operand_counts() const {
  std::lock_guard<std::mutex> lock(bf16_copies_mutex_);
  return operand_counts_;
}

const uint16_t* CudaBackend::bf16_operand(const float* operand, int64_t span, std::unique_ptr<DeviceScratch>& scratch) {
  {
    std::lock_guard<std::mutex> lock(bf16_copies_mutex_);
    // The last registered master that starts at or before the operand; it must cover it all.
    auto it = bf16_copies_.upper_bound(operand);
    if (it != bf16_copies_.begin()) {
      --it;
      const int64_t offset = operand - it->first;
      if (offset + span <= it->second.count) {
        ++operand_counts_.from_copy;
        return it->second.copy + offset;
      }
    }
    ++operand_counts_.cast;
  }
  scratch = std::make_unique<DeviceScratch>(*allocator_, static_cast<size_t>(span) * sizeof(uint16_t));
  kernels::launch_cast_f32_to_bf16(StreamLaunch{stream_}, span, operand, scratch->as<uint16_t>());
  return scratch->as<uint16_t>();
}

namespace {

void check_gemm_type(const char* operand, DType type) {
  if (type != DType::kF32 && type != DType::kBF16) {
    Fail(ErrorKind::kInvalidArgument, "gemm: ", operand, " must be f32 or bf16, got ", dtype_name(type));
  }
}

}  // namespace

void CudaBackend::gemm_empty_sum(const kernels::GemmParams& p, void* c) {
  // k == 0: C = beta C over the m x n block of every batch item (the gaps between rows stay).
  const size_t element = dtype_size(p.c_type);
  auto rows_at = [&](int64_t item, int64_t row) { return static_cast<char*>(c) + (item * p.stride_c + row * p.ldc) * element; };
  const bool dense = p.ldc == p.n && (p.batch == 1 || p.stride_c == p.m * p.n);
  const int64_t runs = dense ? 1 : p.batch * p.m;
  const int64_t run_length = dense ? p.batch * p.m * p.n : p.n;
  for (int64_t r = 0; r < runs; ++r) {
    void* run = dense ? c : rows_at(r / p.m, r % p.m);
    if (p.beta == 0.0f) {
      fill(run_length, p.c_type, 0.0f, run);
    } else {
      scale(run_length, p.c_type, p.beta, run, run);
    }
  }
}

void CudaBackend::gemm(const kernels::GemmParams& p, const void* a, const void* b, void* c) {
  check_gemm_type("A", p.a_type);
  check_gemm_type("B", p.b_type);
  check_gemm_type("C", p.c_type);
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  const bool bf16_given = p.a_type == DType::kBF16 || p.b_type == DType::kBF16;
  if (!bf16_given && p.c_type == DType::kBF16) {
    Fail(ErrorKind::kUnimplemented, "gemm: a bf16 C needs a bf16 A or B (got f32 A and B, m=", p.m, " n=", p.n,
         " k=", p.k, ")");
  }
  if (!bf16_given && (precision_ == GemmPrecision::kFp32 || p.k == 0)) {
    gemm_engine_->run_fp32(p, static_cast<const float*>(a), static_cast<const float*>(b), static_cast<float*>(c));
    return;
  }
  if (p.k == 0) {
    gemm_empty_sum(p, c);
    return;
  }
  // bf16 operands (the GPU reads half the bytes; fp32 accumulation): a bf16 activation as it
  // is; an f32 one (all-f32 GEMMs in kBf16 mode, or a weight beside a bf16 activation in any
  // mode) through a weight's registered copy, or a cast into scratch memory that lives until the
  // GEMM is queued (the caching allocator reuses it only for work queued later on the same stream).
  const OperandSpans spans = spans_of(p);
  std::unique_ptr<DeviceScratch> a_scratch, b_scratch;
  const uint16_t* a16 = p.a_type == DType::kBF16 ? static_cast<const uint16_t*>(a)
                                                 : bf16_operand(static_cast<const float*>(a), spans.a, a_scratch);
  const uint16_t* b16 = p.b_type == DType::kBF16 ? static_cast<const uint16_t*>(b)
                                                 : bf16_operand(static_cast<const float*>(b), spans.b, b_scratch);
  gemm_engine_->run_bf16(p, a16, b16, c);
}

#if defined(__CUDACC__)

namespace {

void check_lt(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) {
    Fail(ErrorKind::kInternal, "cuBLASLt error ", cublasLtGetStatusName(status), " (", cublasLtGetStatusString(status),
         ") in ", call, " at ", file, ":", line);
  }
}
#define LA3_LT_CHECK(call) check_lt((call), #call, __FILE__, __LINE__)

// The descriptors and algorithm of one GEMM shape.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (c != nullptr) cublasLtMatrixLayoutDestroy(c);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (desc != nullptr) cublasLtMatmulDescDestroy(desc);
  }
};

void make_layout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                 int64_t batch, int64_t stride) {
  LA3_LT_CHECK(cublasLtMatrixLayoutCreate(layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    LA3_LT_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    LA3_LT_CHECK(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                  sizeof stride));
  }
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B's storage read as a
// column-major matrix is B^T, so cuBLASLt gets (B, trans_b) as its first operand and
// (A, trans_a) as its second, and writes C^T column-major = C row-major.
std::unique_ptr<LtPlan> make_plan(cublasLtHandle_t handle, const kernels::GemmParams& p, cudaDataType_t operand_type,
                                  cudaDataType_t c_type) {
  auto plan = std::make_unique<LtPlan>();
  LA3_LT_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  LA3_LT_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
  LA3_LT_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
  // Column-major shapes of the stored operands.
  make_layout(&plan->a, operand_type, p.trans_b ? p.k : p.n, p.trans_b ? p.n : p.k, p.ldb, p.batch, p.stride_b);
  make_layout(&plan->b, operand_type, p.trans_a ? p.m : p.k, p.trans_a ? p.k : p.m, p.lda, p.batch, p.stride_a);
  make_layout(&plan->c, c_type, p.n, p.m, p.ldc, p.batch, p.stride_c);

  cublasLtMatmulPreference_t preference = nullptr;
  LA3_LT_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t workspace_bytes = GemmEngine::kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                       sizeof workspace_bytes);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->c, plan->c,
                                                               preference, 1, &heuristic, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  LA3_LT_CHECK(status);
  if (found == 0) {
    Fail(ErrorKind::kUnimplemented, "cuBLASLt has no algorithm for GEMM m=", p.m, " n=", p.n, " k=", p.k,
         " batch=", p.batch);
  }
  plan->algo = heuristic.algo;
  return plan;
}

// Everything a plan depends on (alpha and beta are passed per call, not part of the plan).
using PlanKey = std::array<int64_t, 14>;

PlanKey key_of(const kernels::GemmParams& p, cudaDataType_t operand_type, cudaDataType_t c_type) {
  return {static_cast<int64_t>(operand_type), static_cast<int64_t>(c_type), p.trans_a, p.trans_b, p.m, p.n, p.k,
          p.lda, p.ldb, p.ldc, p.batch, p.stride_a, p.stride_b, p.stride_c};
}

struct PlanKeyHash {
  size_t operator()(const PlanKey& key) const {
    size_t h = 1469598103934665603ull;
    for (int64_t v : key) h = (h ^ static_cast<size_t>(v)) * 1099511628211ull;
    return h;
  }
};

}  // namespace

struct GemmEngine::PlanCache {
  std::mutex mutex;
  std::unordered_map<PlanKey, std::unique_ptr<LtPlan>, PlanKeyHash> plans;
};

namespace {

void lt_matmul(cublasLtHandle_t handle, GemmEngine::PlanCacheAccess cache, void* workspace, cudaStream_t stream,
               const kernels::GemmParams& p, cudaDataType_t operand_type, cudaDataType_t c_type, const void* a,
               const void* b, void* c) {
  const LtPlan* plan = nullptr;
  {
    std::lock_guard<std::mutex> lock(cache->mutex);
    std::unique_ptr<LtPlan>& slot = cache->plans[key_of(p, operand_type, c_type)];
    if (slot == nullptr) slot = make_plan(handle, p, operand_type, c_type);
    plan = slot.get();
  }
  LA3_LT_CHECK(cublasLtMatmul(handle, plan->desc, &p.alpha, b, plan->a, a, plan->b, &p.beta, c, plan->c, c, plan->c,
                              &plan->algo, workspace, GemmEngine::kWorkspaceBytes, stream));
}

}  // namespace

GemmEngine::GemmEngine(CachingAllocator& allocator, cudaStream_t stream)
    : allocator_(allocator), stream_(stream), plans_(std::make_unique<PlanCache>()) {
  cublasLtHandle_t handle = nullptr;
  LA3_LT_CHECK(cublasLtCreate(&handle));
  handle_ = handle;
  workspace_ = allocator_.allocate(kWorkspaceBytes);
}

GemmEngine::~GemmEngine() {
  plans_.reset();  // descriptors before the handle
  if (workspace_ != nullptr) allocator_.deallocate(workspace_, kWorkspaceBytes);
  if (handle_ != nullptr) cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

void GemmEngine::run_fp32(const kernels::GemmParams& p, const float* a, const float* b, float* c) {
  lt_matmul(static_cast<cublasLtHandle_t>(handle_), plans_.get(), workspace_, stream_, p, CUDA_R_32F, CUDA_R_32F, a,
            b, c);
}
void GemmEngine::run_bf16(const kernels::GemmParams& p, const uint16_t* a, const uint16_t* b, void* c) {
  // CUBLAS_COMPUTE_32F with bf16 A and B takes C (and D) in f32 or bf16.
  const cudaDataType_t c_type = p.c_type == DType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
  lt_matmul(static_cast<cublasLtHandle_t>(handle_), plans_.get(), workspace_, stream_, p, CUDA_R_16BF, c_type, a, b,
            c);
}

#else  // the emulation: cuBLASLt's stand-in is the CPU reference GEMM

struct GemmEngine::PlanCache {};

GemmEngine::GemmEngine(CachingAllocator& allocator, cudaStream_t stream) : allocator_(allocator), stream_(stream) {
  // Hold the workspace like the real engine does, so memory accounting matches.
  workspace_ = allocator_.allocate(kWorkspaceBytes);
}
GemmEngine::~GemmEngine() {
  if (workspace_ != nullptr) allocator_.deallocate(workspace_, kWorkspaceBytes);
}

namespace {

// The stand-in reads device memory from the host: it is queued on the stream like the
// cuBLASLt call it replaces, so the stream-order checker sees its operands.
void queue_gemm(cudaStream_t stream, const void* a, const void* b, const void* c) {
  const std::string bad = simt::enqueue_stream_work(
      stream, "GEMM (cuBLASLt stand-in)",
      {{a, simt::Access::kRead, "A"}, {b, simt::Access::kRead, "B"}, {c, simt::Access::kReadWrite, "C"}});
  if (!bad.empty()) Fail(ErrorKind::kInternal, "cuda-emu: ", bad);
}

}  // namespace

void GemmEngine::run_fp32(const kernels::GemmParams& p, const float* a, const float* b, float* c) {
  queue_gemm(stream_, a, b, c);
  backend_for(Device::cpu()).gemm(p, a, b, c);
}

void GemmEngine::run_bf16(const kernels::GemmParams& p, const uint16_t* a, const uint16_t* b, void* c) {
  queue_gemm(stream_, a, b, c);
  // Widen the bf16 operands exactly (a bf16 value is a float with 16 zero low bits) and run
  // the fp32 GEMM: the products are exact in fp32, as in the tensor cores' fp32 accumulation.
  const OperandSpans spans = spans_of(p);
  std::vector<float> a32(static_cast<size_t>(spans.a)), b32(static_cast<size_t>(spans.b));
  for (int64_t i = 0; i < spans.a; ++i) a32[static_cast<size_t>(i)] = kernels::from_bf16_bits(a[i]);
  for (int64_t i = 0; i < spans.b; ++i) b32[static_cast<size_t>(i)] = kernels::from_bf16_bits(b[i]);
  kernels::GemmParams f32 = p;
  f32.a_type = f32.b_type = f32.c_type = DType::kF32;
  if (p.c_type == DType::kF32) {
    backend_for(Device::cpu()).gemm(f32, a32.data(), b32.data(), c);
    return;
  }
  // bf16 C: accumulate into an fp32 copy (read as bf16 when beta != 0) and round each element
  // of the m x n blocks once, as cuBLASLt's epilogue does; the gaps between rows are left as they are.
  uint16_t* c16 = static_cast<uint16_t*>(c);
  std::vector<float> c32(static_cast<size_t>(spans.c), 0.0f);
  if (p.beta != 0.0f) {
    for (int64_t i = 0; i < spans.c; ++i) c32[static_cast<size_t>(i)] = kernels::from_bf16_bits(c16[i]);
  }
  backend_for(Device::cpu()).gemm(f32, a32.data(), b32.data(), c32.data());
  for (int64_t item = 0; item < p.batch; ++item) {
    for (int64_t row = 0; row < p.m; ++row) {
      const int64_t first = item * p.stride_c + row * p.ldc;
      for (int64_t col = 0; col < p.n; ++col) {
        c16[first + col] = kernels::to_bf16_bits(c32[static_cast<size_t>(first + col)]);
      }
    }
  }
}

#endif

}  // namespace la3::LA3_CUDA_FLAVOUR
