// T5 RMSNorm on the CPU. Sums of squares accumulate in double: rows are up to d_model long
// and this is the reference the other backends are measured against. One row template serves
// fp32 and bf16 activations (bf16 is widened exactly on load and rounded to nearest even on
// store; the weight, statistics and dweight stay fp32).
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/dtype.h"
#include "engine/error.h"

namespace la3 {
namespace {

float load(const float* p, int64_t i) { return p[i]; }
float load(const uint16_t* p, int64_t i) { return bf16_to_float(bf16{p[i]}); }
void store(float* p, int64_t i, float v) { p[i] = v; }
void store(uint16_t* p, int64_t i, float v) { p[i] = float_to_bf16(v).bits; }
float stored(const float*, float v) { return v; }
float stored(const uint16_t*, float v) { return bf16_to_float(float_to_bf16(v)); }

// h = x (+ branch, rounded to Io), sum = h when asked, out = weight * (h * r). The second pass
// recomputes h (one add) rather than buffering the row.
template <typename Io>
void forward(const kernels::RmsNormParams& p, const Io* x, const Io* branch, const float* weight, Io* sum, Io* out,
             float* rstd) {
  auto h = [&](int64_t i) { return branch == nullptr ? load(x, i) : stored(x, load(x, i) + load(branch, i)); };
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.cols))
  for (int64_t row = 0; row < p.rows; ++row) {
    const int64_t start = row * p.cols;
    double sum_squares = 0.0;
    for (int64_t c = 0; c < p.cols; ++c) {
      const float v = h(start + c);
      if (sum != nullptr) store(sum, start + c, v);
      sum_squares += static_cast<double>(v) * v;
    }
    const float variance = static_cast<float>(sum_squares / static_cast<double>(p.cols));
    const float r = 1.0f / std::sqrt(variance + p.eps);
    rstd[row] = r;
    // transformers: weight * (x * rsqrt(variance + eps)), in this order.
    for (int64_t c = 0; c < p.cols; ++c) store(out, start + c, weight[c] * (h(start + c) * r));
  }
}

// With g = weight * dout and r = rstd:  dx = r g - x r^3 mean(g x);  dweight += sum_rows dout x r.
template <typename Io>
void backward(const kernels::RmsNormParams& p, const Io* dout, const Io* x, const float* weight, const float* rstd,
              Io* dx, float* dweight) {
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.cols))
  for (int64_t row = 0; row < p.rows; ++row) {
    const int64_t start = row * p.cols;
    const float r = rstd[row];
    double dot = 0.0;
    for (int64_t c = 0; c < p.cols; ++c) {
      dot += static_cast<double>(weight[c]) * load(dout, start + c) * load(x, start + c);
    }
    const float correction = static_cast<float>(dot / static_cast<double>(p.cols)) * r * r * r;
    for (int64_t c = 0; c < p.cols; ++c) {
      store(dx, start + c, r * weight[c] * load(dout, start + c) - load(x, start + c) * correction);
    }
  }
  if (dweight == nullptr) return;
  // Column sums, serial over rows so the accumulation order is deterministic.
  for (int64_t row = 0; row < p.rows; ++row) {
    const int64_t start = row * p.cols;
    const float r = rstd[row];
    for (int64_t c = 0; c < p.cols; ++c) dweight[c] += load(dout, start + c) * load(x, start + c) * r;
  }
}

}  // namespace

// The CPU keeps its bf16 RMSNorm (the reference of the bf16 kernels in
// tests/simt/rmsnorm_kernel_test.cc): f32 or bf16 activations, anything else is refused.
template <typename Body>
void with_norm_type(const char* op, DType act, Body&& body) {
  if (act == DType::kF32) return body(float{});
  if (act == DType::kBF16) return body(uint16_t{});
  Fail(ErrorKind::kInvalidArgument, op, ": activations must be f32 or bf16, got ", dtype_name(act));
}

void CpuBackend::rmsnorm_forward(const kernels::RmsNormParams& p, DType act, const void* x, const float* weight,
                                 void* out, float* rstd) {
  with_norm_type("rmsnorm_forward", act, [&](auto tag) {
    using T = decltype(tag);
    forward<T>(p, static_cast<const T*>(x), nullptr, weight, nullptr, static_cast<T*>(out), rstd);
  });
}
void CpuBackend::add_rmsnorm_forward(const kernels::RmsNormParams& p, DType act, const void* residual,
                                     const void* branch, const float* weight, void* sum, void* out, float* rstd) {
  with_norm_type("add_rmsnorm_forward", act, [&](auto tag) {
    using T = decltype(tag);
    forward<T>(p, static_cast<const T*>(residual), static_cast<const T*>(branch), weight, static_cast<T*>(sum),
               static_cast<T*>(out), rstd);
  });
}
void CpuBackend::rmsnorm_backward(const kernels::RmsNormParams& p, DType act, const void* dout, const void* x,
                                  const float* weight, const float* rstd, void* dx, float* dweight) {
  with_norm_type("rmsnorm_backward", act, [&](auto tag) {
    using T = decltype(tag);
    backward<T>(p, static_cast<const T*>(dout), static_cast<const T*>(x), weight, rstd, static_cast<T*>(dx), dweight);
  });
}

}  // namespace la3
