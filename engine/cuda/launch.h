// The one way engine/cuda/ launches a kernel: simt::launch (<<<>>> under nvcc, fibers under
// g++) on the backend's stream, then the launch is checked, so a bad configuration or an
// emulation fault (deadlock, bad launch) is an EngineError at its launch. The backend does not
// call it directly: it hands StreamLaunch to the launchers beside the kernels
// (kernels/<op>.cuh), which pick grids, blocks and shared memory. Include after the kernel
// headers.
#pragma once

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "engine/cuda/cuda_runtime_api.h"
#include "engine/error.h"
#include "kernels/simt/simt.h"

namespace la3::LA3_CUDA_FLAVOUR {

template <typename... KernelArgs, typename... Args>
void launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   Args&&... args) {
#if defined(__CUDACC__)
  simt::launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
  LA3_CUDA_CHECK(cudaGetLastError());
#else
  // A GPU kernel faults on a host pointer that the emulation would happily read: refuse it.
  const void* pointers[] = {simt::pointer_argument<std::decay_t<Args>>(args)..., nullptr};
  if (std::string bad = simt::check_kernel_pointers(pointers, sizeof...(Args)); !bad.empty()) {
    Fail(ErrorKind::kInternal, "cuda-emu kernel launch (grid ", grid.x, "x", grid.y, "x", grid.z, ", block ", block.x,
         "x", block.y, "x", block.z, "): ", bad);
  }
  try {
    simt::launch(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
  } catch (const EngineError&) {
    throw;
  } catch (const std::exception& error) {
    Fail(ErrorKind::kInternal, "cuda-emu kernel launch (grid ", grid.x, "x", grid.y, "x", grid.z, ", block ", block.x,
         "x", block.y, "x", block.z, ", ", shared_bytes, " bytes shared): ", error.what());
  }
#endif
}

// The `launch` the kernel launchers of kernels/<op>.cuh (kernels/launch.h) get from the
// backend: launch_kernel on the backend's stream.
struct StreamLaunch {
  cudaStream_t stream;
  template <typename... KernelArgs, typename... Args>
  void operator()(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) const {
    launch_kernel(kernel, grid, block, shared_bytes, stream, std::forward<Args>(args)...);
  }
};

}  // namespace la3::LA3_CUDA_FLAVOUR
