// CudaBackend: the sum of squares behind the global gradient norm (kernels/reduce.cuh).
#include <vector>

#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/reduce.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

double CudaBackend::sum_of_squares(int64_t count, const float* x) { return sum_of_squares({Span{x, count}}); }

int64_t CudaBackend::sum_of_squares_partial_count(const std::vector<Span>& spans) const {
  int64_t total_blocks = 0;
  for (const Span& span : spans) total_blocks += kernels::sum_of_squares_blocks(span.count);
  return total_blocks;
}

void CudaBackend::sum_of_squares_partials(const std::vector<Span>& spans, double* partials) {
  // Each buffer's blocks write their partial sums into consecutive slots, up to
  // kernels::kSumOfSquaresSpansPerLaunch buffers per launch; nothing waits.
  kernels::launch_sum_of_squares_spans(StreamLaunch{stream_}, spans.data(), static_cast<int64_t>(spans.size()),
                                       partials);
}

double CudaBackend::sum_of_squares(const std::vector<Span>& spans) {
  // One copy brings every partial back (the only synchronisation), and the host adds them
  // in a fixed order.
  const int64_t total_blocks = sum_of_squares_partial_count(spans);
  if (total_blocks == 0) return 0.0;
  DeviceScratch partials(*allocator_, static_cast<size_t>(total_blocks) * sizeof(double));
  sum_of_squares_partials(spans, partials.as<double>());
  std::vector<double> host(static_cast<size_t>(total_blocks));
  copy_to_host(host.data(), partials.as<double>(), host.size() * sizeof(double));
  double sum = 0.0;
  for (double partial : host) sum += partial;
  return sum;
}

}  // namespace la3::LA3_CUDA_FLAVOUR
