// CudaBackend: inverted dropout on f32 or bf16 activations with the shared Philox keys (kernels/dropout.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/dropout.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, DType act, const void* x,
                                  void* out) {
  // The kernel divides flat indices by width and positions to find each element's key.
  if (!kernels::dropout_layout_fits(p, count)) {
    Fail(ErrorKind::kInternal, "dropout: ", count, " elements are not whole rows of [positions ", p.positions,
         ", width ", p.width, "]");
  }
  with_act_type("dropout_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_dropout(StreamLaunch{stream_}, p, count, static_cast<const T*>(x), static_cast<T*>(out));
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
