// Inverted dropout on the CPU with the shared Philox keying (kernels/philox.cuh).
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "kernels/philox.cuh"

namespace la3 {

// Chunks of 1024 elements (256 Philox blocks): the multipliers of a chunk in one pass, then the
// product. Same decisions as kernels::dropout_keep per element.
void CpuBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) {
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (worth_parallel(count))
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t first = chunk * kChunk;
    const int64_t n = first + kChunk < count ? kChunk : count - first;
    float multiplier[kChunk];
    kernels::dropout_multipliers(p.p, p.seed, p.step, p.stream, static_cast<uint64_t>(first), n, multiplier);
    for (int64_t i = 0; i < n; ++i) out[first + i] = multiplier[i] != 0.0f ? x[first + i] * multiplier[i] : 0.0f;
  }
}

}  // namespace la3
