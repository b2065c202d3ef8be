// CudaBackend: embedding gather and scatter-add (kernels/embedding.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/embedding.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::embedding_forward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* table,
                                       float* out) {
  if (p.count > 0) launch_kernel(kernels::embedding_forward_kernel, dim3(static_cast<unsigned>(p.count)), dim3(64), 0, stream_, p, ids, table, out);
}
void CudaBackend::embedding_backward(const kernels::EmbeddingParams& p, const int64_t* ids, const float* dout,
                                        float* dtable) {
  if (p.count > 0) launch_kernel(kernels::embedding_backward_kernel, dim3(static_cast<unsigned>(p.count)), dim3(64), 0, stream_, p, ids, dout, dtable);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
