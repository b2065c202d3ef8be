// CudaBackend: RMSNorm, the fused residual add + RMSNorm, and their bf16-activation variants
// (kernels/rmsnorm.cuh).
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/rmsnorm.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {

template <typename Io>
void rmsnorm_backward_on(cudaStream_t stream, CachingAllocator& allocator, const kernels::RmsNormParams& p,
                         const Io* dout, const Io* x, const float* weight, const float* rstd, Io* dx, float* dweight) {
  const bool dweight_pass = dweight != nullptr && p.rows > 0 && p.cols > 0;
  if (dweight_pass && !kernels::rmsnorm_backward_fits(p)) {
    Fail(ErrorKind::kInvalidArgument, "rmsnorm backward: ", p.rows, " rows exceed the dweight grid's limit of ",
         65535 * kernels::kRmsNormDweightRowsPerChunk);
  }
  DeviceScratch partial(allocator,
                        dweight_pass ? static_cast<size_t>(kernels::rmsnorm_backward_scratch_floats(p)) * sizeof(float)
                                     : 0);
  kernels::launch_rmsnorm_backward<Io>(StreamLaunch{stream}, p, dout, x, weight, rstd, dx, dweight,
                                       partial.as<float>());
}

}  // namespace

void CudaBackend::rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out,
                                  float* rstd) {
  kernels::launch_rmsnorm_forward<float>(StreamLaunch{stream_}, p, x, nullptr, weight, nullptr, out, rstd);
}
void CudaBackend::add_rmsnorm_forward(const kernels::RmsNormParams& p, const float* residual, const float* branch,
                                      const float* weight, float* sum, float* out, float* rstd) {
  kernels::launch_rmsnorm_forward<float>(StreamLaunch{stream_}, p, residual, branch, weight, sum, out, rstd);
}
void CudaBackend::rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x,
                                   const float* weight, const float* rstd, float* dx, float* dweight) {
  rmsnorm_backward_on<float>(stream_, *allocator_, p, dout, x, weight, rstd, dx, dweight);
}
void CudaBackend::rmsnorm_forward_bf16(const kernels::RmsNormParams& p, const uint16_t* x, const uint16_t* branch,
                                       const float* weight, uint16_t* sum, uint16_t* out, float* rstd) {
  kernels::launch_rmsnorm_forward<uint16_t>(StreamLaunch{stream_}, p, x, branch, weight, sum, out, rstd);
}
void CudaBackend::rmsnorm_backward_bf16(const kernels::RmsNormParams& p, const uint16_t* dout, const uint16_t* x,
                                        const float* weight, const float* rstd, uint16_t* dx, float* dweight) {
  rmsnorm_backward_on<uint16_t>(stream_, *allocator_, p, dout, x, weight, rstd, dx, dweight);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
