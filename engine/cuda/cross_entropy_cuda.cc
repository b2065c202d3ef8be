// CudaBackend: token cross-entropy fused with log-softmax on f32 or bf16 logits
// (kernels/cross_entropy.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/cross_entropy.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::cross_entropy_forward(const kernels::CrossEntropyParams& p, DType act, const void* logits,
                                        const int64_t* labels, float* row_loss, float* row_lse) {
  with_act_type("cross_entropy_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_cross_entropy_forward(StreamLaunch{stream_}, p, static_cast<const T*>(logits), labels, row_loss,
                                          row_lse);
  });
}
void CudaBackend::cross_entropy_backward(const kernels::CrossEntropyParams& p, DType act, const void* logits,
                                         const int64_t* labels, const float* row_lse, const float* row_weight,
                                         void* dlogits) {
  with_act_type("cross_entropy_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_cross_entropy_backward(StreamLaunch{stream_}, p, static_cast<const T*>(logits), labels, row_lse,
                                           row_weight, static_cast<T*>(dlogits));
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
