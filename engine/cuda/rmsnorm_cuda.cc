// CudaBackend: RMSNorm and the fused residual add + RMSNorm on f32 or bf16 activations
// (kernels/rmsnorm.cuh).
#include "engine/cuda/act_dispatch.h"
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

void CudaBackend::rmsnorm_forward(const kernels::RmsNormParams& p, DType act, const void* x, const float* weight,
                                  void* out, float* rstd) {
  with_act_type("rmsnorm_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_rmsnorm_forward<T>(StreamLaunch{stream_}, p, static_cast<const T*>(x), nullptr, weight, nullptr,
                                       static_cast<T*>(out), rstd);
  });
}
void CudaBackend::add_rmsnorm_forward(const kernels::RmsNormParams& p, DType act, const void* residual,
                                      const void* branch, const float* weight, void* sum, void* out, float* rstd) {
  with_act_type("add_rmsnorm_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_rmsnorm_forward<T>(StreamLaunch{stream_}, p, static_cast<const T*>(residual),
                                       static_cast<const T*>(branch), weight, static_cast<T*>(sum),
                                       static_cast<T*>(out), rstd);
  });
}
void CudaBackend::rmsnorm_backward(const kernels::RmsNormParams& p, DType act, const void* dout, const void* x,
                                   const float* weight, const float* rstd, void* dx, float* dweight) {
  with_act_type("rmsnorm_backward", act, [&](auto tag) {
    using T = decltype(tag);
    rmsnorm_backward_on<T>(stream_, *allocator_, p, static_cast<const T*>(dout), static_cast<const T*>(x), weight,
                           rstd, static_cast<T*>(dx), dweight);
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
