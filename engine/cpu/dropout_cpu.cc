// Inverted dropout on the CPU with the shared Philox keying (kernels/philox.cuh).
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "kernels/philox.cuh"

namespace la3 {

void CpuBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) {
  const float keep_scale = 1.0f / (1.0f - p.p);
#pragma omp parallel for schedule(static) if (worth_parallel(count))
  for (int64_t i = 0; i < count; ++i) {
    const bool keep = kernels::dropout_keep(p.p, p.seed, p.step, p.stream, static_cast<uint64_t>(i));
    out[i] = keep ? x[i] * keep_scale : 0.0f;
  }
}

}  // namespace la3
