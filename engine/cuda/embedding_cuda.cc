// CudaBackend: embedding gather and scatter-add (kernels/embedding.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/embedding.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::embedding_forward(const kernels::EmbeddingParams& p, DType act, const int64_t* ids,
                                    const float* table, void* out) {
  with_act_type("embedding_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_embedding_forward(StreamLaunch{stream_}, p, ids, table, static_cast<T*>(out));
  });
}
void CudaBackend::embedding_backward(const kernels::EmbeddingParams& p, DType act, const int64_t* ids,
                                     const void* dout, float* dtable) {
  with_act_type("embedding_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_embedding_backward(StreamLaunch{stream_}, p, ids, static_cast<const T*>(dout), dtable);
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
