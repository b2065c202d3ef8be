// CudaBackend: inverted dropout with the shared Philox keys (kernels/dropout.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/dropout.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::dropout_forward(const kernels::DropoutParams& p, int64_t count, const float* x, float* out) {
  // The kernel divides flat indices by width and positions to find each element's key.
  if (!kernels::dropout_layout_fits(p, count)) {
    Fail(ErrorKind::kInternal, "dropout: ", count, " elements are not whole rows of [positions ", p.positions,
         ", width ", p.width, "]");
  }
  kernels::launch_dropout(StreamLaunch{stream_}, p, count, x, out);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
