// SIMT emulation: runs CUDA kernel source on the CPU (../shared/SIMT-NOTES.md).
//
// Under nvcc this header is only <cuda_runtime.h> plus the launch helper. Under g++ every
// block of a launch runs on one OS thread, its CUDA threads as cooperative Boost.Context
// fibers (64 KB stacks with a guard page): a fiber runs until it reaches __syncthreads() or a
// warp collective, then the next one runs. So `__syncthreads()` is a counting barrier
// (threads that returned count as arrived, as on the hardware), `__shared__` is per block
// (thread_local, and each block runs start to finish on one OS thread), and warp shuffles
// exchange values through a per-warp slot array guarded by a per-warp barrier that honours
// the mask. A barrier that can never complete (half the block waiting in __syncthreads,
// half in another barrier or finished with others still waiting elsewhere) is reported
// with the file:line of every waiting thread instead of hanging.
//
// Thread order (forward, reverse) is selectable with LA3_SIMT_ORDER=forward|reverse, so a
// kernel that misses a barrier shows wrong results in one of the orders.
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>

namespace la3::simt {
template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            Args&&... args) {
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
}
}  // namespace la3::simt

#else  // host emulation

#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace la3::simt {

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

// The coordinates of the running emulated thread.
struct ThreadCoordinates {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
};
extern thread_local ThreadCoordinates current;

// Raised (and turned into a launch error) when a block cannot make progress.
class DeadlockError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Barrier of the current block; `where` is "file:line" for deadlock reports.
void block_barrier(const char* where);
// Warp collectives: every lane in `mask` must call with its value; returns the values of all
// 32 lanes through `lanes` (index = lane).
void warp_exchange(unsigned int mask, const void* value, size_t size, void* lanes, const char* where);

// Runs `body` for every thread of every block (the kernel with its arguments bound).
void run_grid(dim3 grid, dim3 block, const std::function<void()>& body);

template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t /*shared_bytes*/, void* /*stream*/,
            Args&&... args) {
  run_grid(grid, block, [&]() { kernel(args...); });
}

constexpr int kWarpSize = 32;

inline unsigned int lane_id() {
  const ThreadCoordinates& c = current;
  const unsigned int linear = c.thread_idx.x + c.block_dim.x * (c.thread_idx.y + c.block_dim.y * c.thread_idx.z);
  return linear % kWarpSize;
}

template <typename T>
T shfl_generic(unsigned int mask, T value, int source_lane, const char* where) {
  T lanes[kWarpSize];
  warp_exchange(mask, &value, sizeof(T), lanes, where);
  return lanes[source_lane & (kWarpSize - 1)];
}

}  // namespace la3::simt

#define LA3_SIMT_STR2(x) #x
#define LA3_SIMT_STR(x) LA3_SIMT_STR2(x)
#define LA3_SIMT_WHERE __FILE__ ":" LA3_SIMT_STR(__LINE__)

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ thread_local
#define threadIdx (::la3::simt::current.thread_idx)
#define blockIdx (::la3::simt::current.block_idx)
#define blockDim (::la3::simt::current.block_dim)
#define gridDim (::la3::simt::current.grid_dim)
#define warpSize (::la3::simt::kWarpSize)
#define __syncthreads() ::la3::simt::block_barrier(LA3_SIMT_WHERE)
#define __shfl_sync(mask, value, lane) ::la3::simt::shfl_generic((mask), (value), (lane), LA3_SIMT_WHERE)
#define __shfl_xor_sync(mask, value, lane_mask) \
  ::la3::simt::shfl_generic((mask), (value), static_cast<int>(::la3::simt::lane_id()) ^ (lane_mask), LA3_SIMT_WHERE)
#define __shfl_down_sync(mask, value, delta)                                                              \
  ::la3::simt::shfl_generic((mask), (value),                                                             \
                            static_cast<int>(::la3::simt::lane_id()) + (delta) < ::la3::simt::kWarpSize \
                                ? static_cast<int>(::la3::simt::lane_id()) + (delta)                     \
                                : static_cast<int>(::la3::simt::lane_id()),                              \
                            LA3_SIMT_WHERE)

using la3::simt::dim3;

#endif  // __CUDACC__
