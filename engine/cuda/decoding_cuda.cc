// CudaBackend: incremental decoding (kernels/decoding.cuh): the key/value cache write, the
// in-place beam reorder, the logits processors and top-k.
#include <algorithm>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/decoding.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {

constexpr size_t kDefaultSharedBytes = 48 * 1024;

unsigned blocks_for(int64_t count, unsigned threads) {
  return static_cast<unsigned>(std::max<int64_t>((count + threads - 1) / threads, 1));
}

}  // namespace

void CudaBackend::cache_write(const kernels::CacheWriteParams& p, const float* src, float* dst) {
  if (p.rows * p.width == 0) return;
  launch_kernel(kernels::cache_write_kernel, dim3(blocks_for(p.rows * p.width, kernels::kDecodingThreads)),
                dim3(kernels::kDecodingThreads), 0, stream_, p, src, dst);
}

void CudaBackend::reorder_rows(const kernels::RowReorderParams& p, const int64_t* source_rows, float* data) {
  if (p.segments == 0 || p.rows == 0 || p.width == 0) return;
  // Each thread stages one column of its group: group * threads floats of shared memory.
  unsigned threads = 128;
  while (threads > 32 && static_cast<size_t>(p.group) * threads * sizeof(float) > kDefaultSharedBytes) threads /= 2;
  const size_t shared = static_cast<size_t>(p.group) * threads * sizeof(float);
  if (shared > kDefaultSharedBytes) {
    Fail(ErrorKind::kInvalidArgument, "reorder_rows: groups of ", p.group, " rows need ", shared,
         " bytes of shared memory (more than 48 KiB)");
  }
  launch_kernel(kernels::reorder_rows_kernel,
                dim3(blocks_for(p.width, threads), static_cast<unsigned>(p.rows / p.group),
                     static_cast<unsigned>(p.segments)),
                dim3(threads), shared, stream_, p, source_rows, data);
}

void CudaBackend::process_logits(const kernels::LogitsProcessParams& p, const float* logits, const int64_t* history,
                                 const float* beam_scores, float* processed, float* log_probs) {
  if (p.rows == 0) return;
  launch_kernel(kernels::process_logits_kernel, dim3(static_cast<unsigned>(p.rows)), dim3(kernels::kDecodingThreads), 0,
                stream_, p, logits, history, beam_scores, processed, log_probs);
}

void CudaBackend::top_k(const kernels::TopKParams& p, const float* scores, const float* companion, int64_t* indices,
                        float* values, float* companion_values) {
  if (p.groups == 0 || p.k == 0) return;
  launch_kernel(kernels::top_k_kernel, dim3(static_cast<unsigned>(p.groups)), dim3(kernels::kDecodingThreads), 0,
                stream_, p, scores, companion, indices, values, companion_values);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
