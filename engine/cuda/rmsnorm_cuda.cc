// CudaBackend: RMSNorm, the fused residual add + RMSNorm, and their bf16-activation variants
// (kernels/rmsnorm.cuh).
#include <algorithm>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/rmsnorm.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {

template <typename Io>
void launch_rmsnorm_forward(cudaStream_t stream, const kernels::RmsNormParams& p, const Io* x, const Io* branch,
                            const float* weight, Io* sum, Io* out, float* rstd) {
  if (p.rows == 0) return;
  launch_kernel(kernels::rmsnorm_forward_kernel<Io>, dim3(static_cast<unsigned>(p.rows)),
                dim3(kernels::kRmsNormThreads), 0, stream, p, x, branch, weight, sum, out, rstd);
}

template <typename Io>
void launch_rmsnorm_backward(cudaStream_t stream, CachingAllocator& allocator, const kernels::RmsNormParams& p,
                             const Io* dout, const Io* x, const float* weight, const float* rstd, Io* dx,
                             float* dweight) {
  if (p.rows == 0) return;
  launch_kernel(kernels::rmsnorm_backward_dx_kernel<Io>, dim3(static_cast<unsigned>(p.rows)),
                dim3(kernels::kRmsNormThreads), 0, stream, p, dout, x, weight, rstd, dx);
  if (dweight == nullptr || p.cols == 0) return;
  const int64_t chunks = kernels::rmsnorm_dweight_chunks(p.rows);
  if (chunks > 65535) {  // gridDim.y's limit
    Fail(ErrorKind::kInvalidArgument, "rmsnorm backward: ", p.rows, " rows exceed the dweight grid's limit of ",
         65535 * kernels::kRmsNormDweightRowsPerChunk);
  }
  const unsigned column_blocks =
      static_cast<unsigned>((p.cols + kernels::kRmsNormThreads - 1) / kernels::kRmsNormThreads);
  DeviceScratch partial(allocator, static_cast<size_t>(chunks * p.cols) * sizeof(float));
  launch_kernel(kernels::rmsnorm_dweight_partial_kernel<Io>, dim3(column_blocks, static_cast<unsigned>(chunks)),
                dim3(kernels::kRmsNormThreads), 0, stream, p, dout, x, rstd, partial.as<float>());
  launch_kernel(kernels::rmsnorm_dweight_reduce_kernel, dim3(column_blocks), dim3(kernels::kRmsNormThreads), 0, stream,
                chunks, p.cols, static_cast<const float*>(partial.as<float>()), dweight);
}

}  // namespace

void CudaBackend::rmsnorm_forward(const kernels::RmsNormParams& p, const float* x, const float* weight, float* out,
                                  float* rstd) {
  launch_rmsnorm_forward<float>(stream_, p, x, nullptr, weight, nullptr, out, rstd);
}
void CudaBackend::add_rmsnorm_forward(const kernels::RmsNormParams& p, const float* residual, const float* branch,
                                      const float* weight, float* sum, float* out, float* rstd) {
  launch_rmsnorm_forward<float>(stream_, p, residual, branch, weight, sum, out, rstd);
}
void CudaBackend::rmsnorm_backward(const kernels::RmsNormParams& p, const float* dout, const float* x,
                                   const float* weight, const float* rstd, float* dx, float* dweight) {
  launch_rmsnorm_backward<float>(stream_, *allocator_, p, dout, x, weight, rstd, dx, dweight);
}
void CudaBackend::rmsnorm_forward_bf16(const kernels::RmsNormParams& p, const uint16_t* x, const uint16_t* branch,
                                       const float* weight, uint16_t* sum, uint16_t* out, float* rstd) {
  launch_rmsnorm_forward<uint16_t>(stream_, p, x, branch, weight, sum, out, rstd);
}
void CudaBackend::rmsnorm_backward_bf16(const kernels::RmsNormParams& p, const uint16_t* dout, const uint16_t* x,
                                        const float* weight, const float* rstd, uint16_t* dx, float* dweight) {
  launch_rmsnorm_backward<uint16_t>(stream_, *allocator_, p, dout, x, weight, rstd, dx, dweight);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
