// relu, gelu_new and the gated-GELU product on the CPU.
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

void CpuBackend::relu_forward(int64_t count, const float* x, float* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void CpuBackend::relu_backward(int64_t count, const float* dout, const float* x, float* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = x[i] > 0.0f ? dout[i] : 0.0f;
}

void CpuBackend::gelu_new_forward(int64_t count, const float* x, float* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = gelu_new(x[i]);
}

void CpuBackend::gelu_new_backward(int64_t count, const float* dout, const float* x, float* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = dout[i] * gelu_new_derivative(x[i]);
}

void CpuBackend::gated_gelu_forward(int64_t count, const float* gate, const float* linear, float* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = gelu_new(gate[i]) * linear[i];
}

void CpuBackend::gated_gelu_backward(int64_t count, const float* dout, const float* gate, const float* linear,
                                     float* dgate, float* dlinear) {
  for (int64_t i = 0; i < count; ++i) {
    if (dgate != nullptr) dgate[i] = dout[i] * linear[i] * gelu_new_derivative(gate[i]);
    if (dlinear != nullptr) dlinear[i] = dout[i] * gelu_new(gate[i]);
  }
}

}  // namespace la3
