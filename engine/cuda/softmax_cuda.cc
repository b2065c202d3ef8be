// CudaBackend: row softmax on f32 or bf16 activations (kernels/softmax.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/softmax.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::softmax_forward(const kernels::SoftmaxParams& p, DType act, const void* x, void* out) {
  with_act_type("softmax_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_softmax_forward(StreamLaunch{stream_}, p, static_cast<const T*>(x), static_cast<T*>(out));
  });
}
void CudaBackend::softmax_backward(const kernels::SoftmaxParams& p, DType act, const void* dout, const void* out,
                                   void* dx) {
  with_act_type("softmax_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_softmax_backward(StreamLaunch{stream_}, p, static_cast<const T*>(dout), static_cast<const T*>(out),
                                     static_cast<T*>(dx));
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
