// CudaBackend: incremental decoding (kernels/decoding.cuh): the key/value cache write, the
// in-place beam reorder, the logits processors and top-k.
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/decoding.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::cache_write(const kernels::CacheWriteParams& p, DType act, const void* src, void* dst) {
  with_act_type("cache_write", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_cache_write(StreamLaunch{stream_}, p, static_cast<const T*>(src), static_cast<T*>(dst));
  });
}

void CudaBackend::reorder_rows(const kernels::RowReorderParams& p, DType act, const int64_t* source_rows, void* data) {
  with_act_type("reorder_rows", act, [&](auto tag) {
    using T = decltype(tag);
    if (kernels::reorder_rows_threads<T>(p.group) == 0) {
      Fail(ErrorKind::kInvalidArgument, "reorder_rows: groups of ", p.group, " rows need ",
           static_cast<size_t>(p.group) * 32 * sizeof(T), " bytes of shared memory (more than 48 KiB)");
    }
    kernels::launch_reorder_rows(StreamLaunch{stream_}, p, source_rows, static_cast<T*>(data));
  });
}

void CudaBackend::process_logits(const kernels::LogitsProcessParams& p, DType act, const void* logits,
                                 const int64_t* history, const float* beam_scores, float* processed, float* log_probs) {
  with_act_type("process_logits", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_process_logits(StreamLaunch{stream_}, p, static_cast<const T*>(logits), history, beam_scores,
                                   processed, log_probs);
  });
}

void CudaBackend::top_k(const kernels::TopKParams& p, const float* scores, const float* companion, int64_t* indices,
                        float* values, float* companion_values) {
  kernels::launch_top_k(StreamLaunch{stream_}, p, scores, companion, indices, values, companion_values);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
