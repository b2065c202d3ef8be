// relu, gelu_new and the gated-GELU product on the CPU (f32 activations).
#include <cmath>

#include "engine/cpu/cpu_backend.h"

namespace la3 {

namespace {

// sqrt(2 / pi), as math.sqrt(2.0 / math.pi) rounded to float.
constexpr float kGeluScale = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

inline float gelu_new(float x) {
  const float inner = kGeluScale * (x + kGeluCubic * x * x * x);
  return 0.5f * x * (1.0f + std::tanh(inner));
}

// d/dx gelu_new(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 c x^2), t = tanh(inner).
inline float gelu_new_derivative(float x) {
  const float inner = kGeluScale * (x + kGeluCubic * x * x * x);
  const float t = std::tanh(inner);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
}

}  // namespace

void CpuBackend::relu_forward(int64_t count, DType act, const void* x_in, void* out_in) {
  require_f32_activations("relu_forward", act);
  const auto* x = static_cast<const float*>(x_in);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < count; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void CpuBackend::relu_backward(int64_t count, DType act, const void* dout_in, const void* x_in, void* dx_in) {
  require_f32_activations("relu_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  const auto* x = static_cast<const float*>(x_in);
  auto* dx = static_cast<float*>(dx_in);
  for (int64_t i = 0; i < count; ++i) dx[i] = x[i] > 0.0f ? dout[i] : 0.0f;
}

void CpuBackend::gelu_new_forward(int64_t count, DType act, const void* x_in, void* out_in) {
  require_f32_activations("gelu_new_forward", act);
  const auto* x = static_cast<const float*>(x_in);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < count; ++i) out[i] = gelu_new(x[i]);
}

void CpuBackend::gelu_new_backward(int64_t count, DType act, const void* dout_in, const void* x_in, void* dx_in) {
  require_f32_activations("gelu_new_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  const auto* x = static_cast<const float*>(x_in);
  auto* dx = static_cast<float*>(dx_in);
  for (int64_t i = 0; i < count; ++i) dx[i] = dout[i] * gelu_new_derivative(x[i]);
}

void CpuBackend::gated_gelu_forward(int64_t count, DType act, const void* gate_in, const void* linear_in,
                                    void* out_in) {
  require_f32_activations("gated_gelu_forward", act);
  const auto* gate = static_cast<const float*>(gate_in);
  const auto* linear = static_cast<const float*>(linear_in);
  auto* out = static_cast<float*>(out_in);
  for (int64_t i = 0; i < count; ++i) out[i] = gelu_new(gate[i]) * linear[i];
}

void CpuBackend::gated_gelu_backward(int64_t count, DType act, const void* dout_in, const void* gate_in,
                                     const void* linear_in, void* dgate_in, void* dlinear_in) {
  require_f32_activations("gated_gelu_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  const auto* gate = static_cast<const float*>(gate_in);
  const auto* linear = static_cast<const float*>(linear_in);
  auto* dgate = static_cast<float*>(dgate_in);
  auto* dlinear = static_cast<float*>(dlinear_in);
  for (int64_t i = 0; i < count; ++i) {
    if (dgate != nullptr) dgate[i] = dout[i] * linear[i] * gelu_new_derivative(gate[i]);
    if (dlinear != nullptr) dlinear[i] = dout[i] * gelu_new(gate[i]);
  }
}

}  // namespace la3
