// Elementwise arithmetic on the CPU (f32 activations).
#include "engine/cpu/cpu_backend.h"

namespace la3 {

void CpuBackend::add_forward(const kernels::BinaryParams& p, DType act, const void* a_in, const void* b_in,
                             void* out_in) {
  require_f32_activations("add_forward", act);
  const auto* a = static_cast<const float*>(a_in);
  const auto* b = static_cast<const float*>(b_in);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < p.count; ++i) out[i] = a[i] + b[i % p.b_period];
}

void CpuBackend::add_backward(const kernels::BinaryParams& p, DType act, const void* dout_in, void* da_in,
                              void* db_in) {
  require_f32_activations("add_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  auto* da = static_cast<float*>(da_in);
  auto* db = static_cast<float*>(db_in);
  if (da != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) da[i] = dout[i];
  }
  if (db != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) db[i % p.b_period] += dout[i];
  }
}

void CpuBackend::mul_forward(const kernels::BinaryParams& p, DType act, const void* a_in, const void* b_in,
                             void* out_in) {
  require_f32_activations("mul_forward", act);
  const auto* a = static_cast<const float*>(a_in);
  const auto* b = static_cast<const float*>(b_in);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < p.count; ++i) out[i] = a[i] * b[i % p.b_period];
}

void CpuBackend::mul_backward(const kernels::BinaryParams& p, DType act, const void* dout_in, const void* a_in,
                              const void* b_in, void* da_in, void* db_in) {
  require_f32_activations("mul_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  const auto* a = static_cast<const float*>(a_in);
  const auto* b = static_cast<const float*>(b_in);
  auto* da = static_cast<float*>(da_in);
  auto* db = static_cast<float*>(db_in);
  if (da != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) da[i] = dout[i] * b[i % p.b_period];
  }
  if (db != nullptr) {
    for (int64_t i = 0; i < p.count; ++i) db[i % p.b_period] += dout[i] * a[i];
  }
}

void CpuBackend::scale(int64_t count, DType act, float alpha, const void* x_in, void* out_in) {
  require_f32_activations("scale", act);
  const auto* x = static_cast<const float*>(x_in);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < count; ++i) out[i] = alpha * x[i];
}

void CpuBackend::axpy(int64_t count, DType act, float alpha, const void* x_in, void* y_in) {
  require_f32_activations("axpy", act);
  const auto* x = static_cast<const float*>(x_in);
  auto* y = static_cast<float*>(y_in);
  for (int64_t i = 0; i < count; ++i) y[i] += alpha * x[i];
}

void CpuBackend::fill(int64_t count, DType act, float value, void* out_in) {
  require_f32_activations("fill", act);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < count; ++i) out[i] = value;
}

}  // namespace la3
