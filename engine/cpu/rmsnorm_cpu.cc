// T5 RMSNorm on the CPU. Sums of squares accumulate in double: rows are up to d_model long
// and this is the reference the other backends are measured against.
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

namespace la3 {

void CpuBackend::rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out,
                                 float* rstd) {
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.cols))
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* x_row = x + row * p.cols;
    float* out_row = out + row * p.cols;
    double sum_squares = 0.0;
    for (int64_t c = 0; c < p.cols; ++c) sum_squares += static_cast<double>(x_row[c]) * x_row[c];
    const float variance = static_cast<float>(sum_squares / static_cast<double>(p.cols));
    const float r = 1.0f / std::sqrt(variance + p.eps);
    rstd[row] = r;
    // transformers: weight * (x * rsqrt(variance + eps)), in this order.
    for (int64_t c = 0; c < p.cols; ++c) out_row[c] = weight[c] * (x_row[c] * r);
  }
}

// With g = weight * dout and r = rstd:  dx = r g - x r^3 mean(g x);  dweight += sum_rows dout x r.
void CpuBackend::rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x,
                                  const float* weight, const float* rstd, float* dx, float* dweight) {
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.cols))
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* x_row = x + row * p.cols;
    const float* dout_row = dout + row * p.cols;
    float* dx_row = dx + row * p.cols;
    const float r = rstd[row];
    double dot = 0.0;
    for (int64_t c = 0; c < p.cols; ++c) dot += static_cast<double>(weight[c]) * dout_row[c] * x_row[c];
    const float correction = static_cast<float>(dot / static_cast<double>(p.cols)) * r * r * r;
    for (int64_t c = 0; c < p.cols; ++c) dx_row[c] = r * weight[c] * dout_row[c] - x_row[c] * correction;
  }
  if (dweight == nullptr) return;
  // Column sums, serial over rows so the accumulation order is deterministic.
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* x_row = x + row * p.cols;
    const float* dout_row = dout + row * p.cols;
    const float r = rstd[row];
    for (int64_t c = 0; c < p.cols; ++c) dweight[c] += dout_row[c] * x_row[c] * r;
  }
}

}  // namespace la3
