// The CUDA runtime API the CUDA backend's host code calls, for the cuda-emu device.
//
// Under nvcc the backend includes <cuda_runtime.h>; under g++ it includes this header, which
// declares the same names with the same contracts, backed by host memory. So the host code of
// engine/cuda/ (allocation, copies, streams, error checks, workspace sizing) is compiled and
// exercised on a machine without a GPU. Device memory is host memory, but the emulation keeps
// a table of live allocations: a copy or memset that runs past the end of its device buffer,
// or a free of a pointer that cudaMalloc did not return, fails with cudaErrorInvalidValue like
// the real runtime would (or worse, silently) on a GPU.
#pragma once

#if defined(__CUDACC__)
#error "kernels/simt/runtime.h is the host emulation; nvcc builds use <cuda_runtime.h>"
#endif

#include <cstddef>

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
};

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct CUstream_st;  // opaque, as in the real runtime
using cudaStream_t = CUstream_st*;

constexpr unsigned int cudaStreamNonBlocking = 0x01;

const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

// One emulated device (ordinal 0).
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);

cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream);

// Kernels run synchronously under the emulation, so streams only need to exist.
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

namespace la3::simt {
// Bytes currently allocated with the emulated cudaMalloc (for leak checks in tests).
size_t emulated_device_bytes_in_use();
// The emulated device's capacity (LA3_EMU_DEVICE_BYTES, default 8 GiB): cudaMalloc beyond it
// returns cudaErrorMemoryAllocation, so out-of-memory handling can be tested.
size_t emulated_device_capacity();
void set_emulated_device_capacity(size_t bytes);
}  // namespace la3::simt
