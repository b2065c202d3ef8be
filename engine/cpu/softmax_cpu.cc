// Softmax over the last dimension on the CPU, f32 activations (max-subtracted, so exp never overflows).
#include <cmath>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/cpu/denormals.h"

namespace la3 {

void CpuBackend::softmax_forward(const kernels::SoftmaxParams& p, DType act, const void* x_in, void* out_in) {
  require_f32_activations("softmax_forward", act);
  const auto* x = static_cast<const float*>(x_in);
  auto* out = static_cast<float*>(out_in);
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.cols))
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* x_row = x + row * p.cols;
    float* out_row = out + row * p.cols;
    float max_value = -INFINITY;
    for (int64_t c = 0; c < p.cols; ++c) max_value = std::fmax(max_value, x_row[c]);
    float sum = 0.0f;
    for (int64_t c = 0; c < p.cols; ++c) {
      out_row[c] = flush_subnormal(std::exp(x_row[c] - max_value));
      sum += out_row[c];
    }
    const float inverse = 1.0f / sum;
    for (int64_t c = 0; c < p.cols; ++c) out_row[c] *= inverse;
  }
}

// dx = y * (dy - sum(dy * y)).
void CpuBackend::softmax_backward(const kernels::SoftmaxParams& p, DType act, const void* dout_in, const void* out_in,
                                  void* dx_in) {
  require_f32_activations("softmax_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  const auto* out = static_cast<const float*>(out_in);
  auto* dx = static_cast<float*>(dx_in);
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.cols))
  for (int64_t row = 0; row < p.rows; ++row) {
    const float* y = out + row * p.cols;
    const float* dy = dout + row * p.cols;
    float* dx_row = dx + row * p.cols;
    float dot = 0.0f;
    for (int64_t c = 0; c < p.cols; ++c) dot += dy[c] * y[c];
    for (int64_t c = 0; c < p.cols; ++c) dx_row[c] = y[c] * (dy[c] - dot);
  }
}

}  // namespace la3
