// LA3_HOST_DEVICE marks functions that nvcc compiles for both host and device and that g++
// compiles as ordinary inline functions (the CPU backend and the SIMT emulation use them).
#pragma once

#if defined(__CUDACC__)
#define LA3_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define LA3_HOST_DEVICE inline
#endif
