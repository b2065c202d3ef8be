// The sum of squares behind the global gradient norm, on the CPU: double accumulation in
// index order (the reference for the CUDA partial sums of kernels/reduce.cuh).
#include "engine/cpu/cpu_backend.h"

namespace la3 {

double CpuBackend::sum_of_squares(int64_t count, const float* x) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

}  // namespace la3
