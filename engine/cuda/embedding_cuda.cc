// CudaBackend: embedding gather and scatter-add (kernels/embedding.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/embedding.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table,
                                    float* out) {
  kernels::launch_embedding_forward(StreamLaunch{stream_}, p, ids, table, out);
}
void CudaBackend::embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout,
                                     float* dtable) {
  kernels::launch_embedding_backward(StreamLaunch{stream_}, p, ids, dout, dtable);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
