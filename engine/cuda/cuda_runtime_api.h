// The CUDA runtime for the CUDA backend's host code: the real one under nvcc (the `cuda`
// device), the SIMT emulation's host stand-in under g++ (the `cuda-emu` device). Both give
// the same names and contracts, so engine/cuda/*.cc is one source for both devices.
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include "kernels/simt/runtime.h"
#endif

#include <string>

#include "engine/error.h"

namespace la3::cuda_detail {

[[noreturn]] inline void fail_cuda(cudaError_t status, const char* call, const char* file, int line) {
  const ErrorKind kind = status == cudaErrorMemoryAllocation ? ErrorKind::kResourceExhausted : ErrorKind::kInternal;
#if defined(__CUDACC__)
  Fail(kind, "CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") in ", call, " at ", file,
       ":", line);
#else
  // The emulation says what was wrong (a stream-order violation, the range of a bad copy).
  const std::string detail = status == cudaPeekAtLastError() ? simt::last_error_detail() : std::string();
  Fail(kind, "CUDA error ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ") in ", call, " at ", file,
       ":", line, detail.empty() ? "" : ": ", detail);
#endif
}

}  // namespace la3::cuda_detail

// Checks a CUDA runtime call; a failure becomes an EngineError naming the call and where.
#define LA3_CUDA_CHECK(call)                                                                  \
  do {                                                                                        \
    const cudaError_t la3_cuda_status = (call);                                               \
    if (la3_cuda_status != cudaSuccess) {                                                     \
      ::la3::cuda_detail::fail_cuda(la3_cuda_status, #call, __FILE__, __LINE__);              \
    }                                                                                         \
  } while (false)
