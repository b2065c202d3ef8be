// The one way engine/cuda/ launches a kernel: simt::launch (<<<>>> under nvcc, fibers under
// g++) on the backend's stream, then the launch is checked, so a bad configuration or an
// emulation fault (deadlock, bad launch) is an EngineError at its launch. Include after the
// kernel headers.
#pragma once

#include <exception>
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

}  // namespace la3::LA3_CUDA_FLAVOUR
