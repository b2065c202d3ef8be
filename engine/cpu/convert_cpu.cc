// f32 <-> bf16 conversion on the CPU.
#include <cstring>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

namespace la3 {

// Conversion is not arithmetic on activations: the CPU converts both ways (bf16 weight copies,
// bf16 inputs for the CUDA devices' reference runs).
void CpuBackend::convert(int64_t count, DType from, const void* in, DType to, void* out) {
  if (!is_floating(from) || !is_floating(to)) {
    Fail(ErrorKind::kInvalidArgument, "convert: f32 and bf16 only, got ", dtype_name(from), " -> ", dtype_name(to));
  }
  if (from == to) {
    std::memcpy(out, in, static_cast<size_t>(count) * dtype_size(from));
  } else if (from == DType::kF32) {
    const auto* x = static_cast<const float*>(in);
    auto* y = static_cast<bf16*>(out);
#pragma omp parallel for schedule(static) if (worth_parallel(count))
    for (int64_t i = 0; i < count; ++i) y[i] = float_to_bf16(x[i]);
  } else {
    const auto* x = static_cast<const bf16*>(in);
    auto* y = static_cast<float*>(out);
#pragma omp parallel for schedule(static) if (worth_parallel(count))
    for (int64_t i = 0; i < count; ++i) y[i] = bf16_to_float(x[i]);
  }
}

}  // namespace la3
