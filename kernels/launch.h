// How the launchers of kernels/<op>.cuh launch. A launcher (launch_<kernel>(launch, ...)) owns
// everything about a launch of its kernels: the grid and block, the dynamic shared memory,
// the order of its kernels and the scratch they share. It calls
// `launch(kernel, grid, block, shared_bytes, args...)`, so one launcher serves
//   - the CUDA backends (engine/cuda/launch.h: on the backend's stream, failures turned into
//     EngineError), and through them bench/kernels_bench.cu, and
//   - the emulated kernel tests (tests/simt), with SimtLaunch below,
// and nobody re-derives a grid. Launchers never allocate: a kernel family that needs scratch
// memory exports its size (e.g. attention_backward_scratch_floats) and takes the pointer.
#pragma once

#include <cstddef>
#include <utility>

#include "kernels/simt/simt.h"

namespace la3::kernels {

// Shared memory per block a launch gets without opt-in: the static __shared__ bytes of the
// kernel (LA3_SHARED) plus the dynamic bytes of the launch. No kernel of LA3 opts in to more
// (cudaFuncAttributeMaxDynamicSharedMemorySize), and the SIMT emulation refuses more
// (kernels/simt/simt.h), so launchers that size dynamic shared memory count both.
constexpr size_t kMaxSharedBytesPerBlock = 48 * 1024;

#if defined(__CUDACC__)
using LaunchStream = cudaStream_t;
#else
using LaunchStream = void*;  // what simt::launch takes under the emulation (a cudaStream_t converts)
#endif

// simt::launch on `stream` (the legacy default stream by default): `<<<>>>` under nvcc, the
// SIMT emulation under g++, errors as the emulation reports them (exceptions).
struct SimtLaunch {
  LaunchStream stream = nullptr;
  template <typename... KernelArgs, typename... Args>
  void operator()(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) const {
    simt::launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
  }
};

}  // namespace la3::kernels
