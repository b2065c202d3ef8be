// LA3_HOST_DEVICE marks functions that nvcc compiles for both host and device and that g++
// compiles as ordinary inline functions (the CPU backend and the SIMT emulation use them).
#pragma once

#if defined(__CUDACC__)
#define LA3_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LA3_HOST_DEVICE inline
#endif

// a * b rounded to fp32 on its own, never fused into a following add (nvcc contracts a
// multiply and an add into an FMA by default; an intrinsic it does not contract keeps the
// product identical to a separate multiply pass). g++ does not contract in ISO C++ mode.
namespace la3::kernels {
LA3_HOST_DEVICE float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
}  // namespace la3::kernels
