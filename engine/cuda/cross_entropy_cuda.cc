// CudaBackend: token cross-entropy fused with log-softmax (kernels/cross_entropy.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/cross_entropy.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::cross_entropy_forward(const kernels::CrossEntropyParams& p, const float* logits,
                                        const int64_t* labels, float* row_loss, float* row_lse) {
  kernels::launch_cross_entropy_forward(StreamLaunch{stream_}, p, logits, labels, row_loss, row_lse);
}
void CudaBackend::cross_entropy_backward(const kernels::CrossEntropyParams& p, const float* logits,
                                         const int64_t* labels, const float* row_lse, const float* row_weight,
                                         float* dlogits) {
  kernels::launch_cross_entropy_backward(StreamLaunch{stream_}, p, logits, labels, row_lse, row_weight, dlogits);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
