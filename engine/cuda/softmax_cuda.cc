// CudaBackend: row softmax (kernels/softmax.cuh).
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/softmax.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::softmax_forward(const kernels::SoftmaxParams& p, const float* x, float* out) {
  kernels::launch_softmax_forward(StreamLaunch{stream_}, p, x, out);
}
void CudaBackend::softmax_backward(const kernels::SoftmaxParams& p, const float* dout, const float* out, float* dx) {
  kernels::launch_softmax_backward(StreamLaunch{stream_}, p, dout, out, dx);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
