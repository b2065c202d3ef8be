// Elementwise arithmetic on the CPU.
#include "engine/cpu/cpu_backend.h"

namespace la3 {

void CpuBackend::add_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  for (int64_t i = 0; i < p.count; ++i) out[i] = a[i] + b[i % p.b_period];
}

void CpuBackend::add_backward(const kernels::BinaryParams& p, const float* dout, float* da, float* db) {
  if (da != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) da[i] = dout[i];
  }
  if (db != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) db[i % p.b_period] += dout[i];
  }
}

void CpuBackend::mul_forward(const kernels::BinaryParams& p, const float* a, const float* b, float* out) {
  for (int64_t i = 0; i < p.count; ++i) out[i] = a[i] * b[i % p.b_period];
}

void CpuBackend::mul_backward(const kernels::BinaryParams& p, const float* dout, const float* a, const float* b,
                              float* da, float* db) {
  if (da != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) da[i] = dout[i] * b[i % p.b_period];
  }
  if (db != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) db[i % p.b_period] += dout[i] * a[i];
  }
}

void CpuBackend::scale(int64_t count, float alpha, const float* x, float* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = alpha * x[i];
}

void CpuBackend::axpy(int64_t count, float alpha, const float* x, float* y) {
  for (int64_t i = 0; i < count; ++i) y[i] += alpha * x[i];
}

void CpuBackend::fill(int64_t count, float value, float* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = value;
}

}  // namespace la3
