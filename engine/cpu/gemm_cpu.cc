// GEMM on the CPU: OpenBLAS cblas_sgemm, one call per batch item.
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/dtype.h"
#include "engine/error.h"

namespace la3 {

Device CpuBackend::device() const { return Device::cpu(); }

std::string CpuBackend::name() const { return "cpu (OpenBLAS)"; }

void set_cpu_threads(int threads) {
  if (threads <= 0) return;
  openblas_set_num_threads(threads);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
}

namespace {

// OpenBLAS's sgemm is f32 only: a bf16 operand is refused by name rather than read as floats
// (bf16 GEMMs run on the CUDA devices).
void require_f32_operand(const char* operand, DType type) {
  if (type != DType::kF32) {
    Fail(ErrorKind::kUnimplemented, "gemm: the cpu backend takes f32 operands, got ", operand, " of type ",
         dtype_name(type), " (bf16 GEMMs run on cuda and cuda-emu)");
  }
}

}  // namespace

void CpuBackend::gemm(const kernels::GemmParams& p, const void* a_in, const void* b_in, void* c_in) {
  require_f32_operand("A", p.a_type);
  require_f32_operand("B", p.b_type);
  require_f32_operand("C", p.c_type);
  const float* a = static_cast<const float*>(a_in);
  const float* b = static_cast<const float*>(b_in);
  float* c = static_cast<float*>(c_in);
  if (p.m < 0 || p.n < 0 || p.k < 0 || p.batch < 0) {
    Fail(ErrorKind::kInternal, "gemm: negative size m=", p.m, " n=", p.n, " k=", p.k, " batch=", p.batch);
  }
  if (p.m == 0 || p.n == 0) return;
  for (int64_t item = 0; item < p.batch; ++item) {
    float* c_item = c + item * p.stride_c;
    if (p.k == 0) {
      // BLAS would scale C by beta; make the empty sum explicit.
      for (int64_t r = 0; r < p.m; ++r) {
        for (int64_t col = 0; col < p.n; ++col) {
          float& value = c_item[r * p.ldc + col];
          value = p.beta == 0.0f ? 0.0f : value * p.beta;
        }
      }
      continue;
    }
    cblas_sgemm(CblasRowMajor, p.trans_a ? CblasTrans : CblasNoTrans, p.trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(p.m), static_cast<blasint>(p.n), static_cast<blasint>(p.k), p.alpha,
                a + item * p.stride_a, static_cast<blasint>(p.lda), b + item * p.stride_b,
                static_cast<blasint>(p.ldb), p.beta, c_item, static_cast<blasint>(p.ldc));
  }
}

}  // namespace la3
