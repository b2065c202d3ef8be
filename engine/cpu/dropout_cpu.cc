// Inverted dropout on the CPU (f32 activations) with the shared Philox keying (kernels/philox.cuh) and element
// keys (kernels/dropout_key.cuh).
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/error.h"
#include "kernels/dropout_key.cuh"
#include "kernels/philox.cuh"

namespace la3 {

// One (row, position) line of `width` elements at a time: its keys are consecutive, so the
// multipliers of a chunk of up to 1024 columns (256 Philox blocks) come in one pass, then the
// product. Same decisions as kernels::dropout_keep at dropout_key per element.
void CpuBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, DType act, const void* x_in,
                                 void* out_in) {
  require_f32_activations("dropout_forward", act);
  const auto* x = static_cast<const float*>(x_in);
  auto* out = static_cast<float*>(out_in);
  if (!kernels::dropout_layout_fits(p, count)) {
    Fail(ErrorKind::kInternal, "dropout: ", count, " elements are not whole rows of [positions ", p.positions,
         ", width ", p.width, "]");
  }
  constexpr int64_t kChunk = 1024;
  const int64_t lines = count / p.width;
#pragma omp parallel for schedule(static) if (worth_parallel(count))
  for (int64_t line = 0; line < lines; ++line) {
    const int64_t row = line / p.positions, position = line % p.positions;
    const uint64_t first_key = kernels::dropout_key(p, row, position, 0);
    const float* x_line = x + line * p.width;
    float* out_line = out + line * p.width;
    for (int64_t first = 0; first < p.width; first += kChunk) {
      const int64_t n = first + kChunk < p.width ? kChunk : p.width - first;
      float multiplier[kChunk];
      kernels::dropout_multipliers(p.p, p.seed, p.step, p.stream, first_key + static_cast<uint64_t>(first), n,
                                   multiplier);
      for (int64_t i = 0; i < n; ++i) {
        out_line[first + i] = multiplier[i] != 0.0f ? x_line[first + i] * multiplier[i] : 0.0f;
      }
    }
  }
}

}  // namespace la3
