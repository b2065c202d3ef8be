// SIMT emulation: runs CUDA kernel source on the CPU (docs/CUDA.md, The SIMT emulation).
//
// Under nvcc this header is only <cuda_runtime.h> plus the launch helper. Under g++ every
// block of a launch runs on one OS thread, its CUDA threads as cooperative Boost.Context
// fibers (64 KB stacks with a guard page): a fiber runs until it reaches __syncthreads() or a
// warp collective, then the next one runs. So `__syncthreads()` is a counting barrier
// (threads that returned count as arrived, as on the hardware), static shared memory
// (LA3_SHARED) is per block (thread_local, and each block runs start to finish on one OS
// thread) and counted against the per-block limit with the dynamic bytes, and warp shuffles
// exchange values through a per-warp slot array guarded by a per-warp barrier that honours
// the mask. A barrier that can never complete (half the block waiting in __syncthreads,
// half in another barrier or finished with others still waiting elsewhere) is reported
// with the file:line of every waiting thread instead of hanging.
//
// Thread order is selectable with LA3_SIMT_ORDER=forward|reverse|shuffled (LA3_SIMT_SEED),
// so a kernel that misses a barrier shows wrong results in one of the orders; blocks run on
// LA3_SIMT_WORKERS OS threads; LA3_SIMT_STRICT=1 reports a barrier that only some threads
// reach (the rest returned) instead of releasing it.
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>

#include <utility>

#define LA3_DYNAMIC_SHARED(type, name)                                   \
  extern __shared__ __align__(16) unsigned char la3_dynamic_shared_bytes[]; \
  type* name = reinterpret_cast<type*>(la3_dynamic_shared_bytes)
// Static shared memory: LA3_SHARED(float, scratch, [32]) or LA3_SHARED(int64_t, picked). Under
// the emulation it also tells the launch how many bytes the kernel declares (see below).
#define LA3_SHARED(type, name, ...) __shared__ type name __VA_ARGS__

namespace la3::simt {
template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            Args&&... args) {
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
}
}  // namespace la3::simt

#else  // host emulation

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>

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
// Warp collectives: every lane in `mask` must call with its value (at most kWarpLaneBytes);
// returns the values of all 32 lanes, lane l's at byte l * kWarpLaneBytes (zeros for lanes that
// did not take part). The bytes stay valid until this thread's next collective: read them at once.
constexpr size_t kWarpLaneBytes = 16;
const unsigned char* warp_exchange(unsigned int mask, const void* value, size_t size, const char* where);

// __syncthreads_count/_and/_or: a barrier that also reduces one int over the block.
int block_barrier_reduce(int predicate, int kind, const char* where);  // kind 0 count, 1 and, 2 or

// The dynamic shared memory of the running block (LA3_DYNAMIC_SHARED); its bytes are NaN
// (0xFF) before each block starts, so a kernel that reads before writing sees NaN.
unsigned char* dynamic_shared_memory();

// The per-block shared memory (static __shared__ plus dynamic) of a CUDA launch without opt-in
// (cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize), up to 227 KB on an
// H100). No kernel of LA3 opts in, so the emulation allows no more.
constexpr size_t kMaxSharedBytesPerBlock = 48 * 1024;
constexpr size_t kMaxDynamicSharedBytes = kMaxSharedBytesPerBlock;

// What a launch may ask for (the CUDA limits of every device since compute capability 3.0).
constexpr unsigned int kMaxGridDimX = 2147483647u;  // 2^31 - 1
constexpr unsigned int kMaxGridDimYZ = 65535u;
constexpr unsigned int kMaxBlockDimXY = 1024u;
constexpr unsigned int kMaxBlockDimZ = 64u;
constexpr size_t kMaxThreadsPerBlock = 1024;

// Runs `body` for every thread of every block (the kernel with its arguments bound).
// Throws std::invalid_argument for a launch the hardware would refuse: an empty grid or block,
// a grid or block dimension over its limit, more than 1024 threads per block, more dynamic
// shared memory than the per-block limit; and, from the first block that declares it, static
// shared memory (LA3_SHARED) that together with the dynamic bytes exceeds the limit.
void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

// LA3_SHARED under the emulation: the running block declares `bytes` of static shared memory
// at `address` (its thread_local array; repeated declarations of one array count once).
// Throws std::invalid_argument when static + dynamic bytes exceed kMaxSharedBytesPerBlock.
void declare_static_shared(const void* address, size_t bytes, const char* where);

// The static shared bytes the last run_grid of this thread counted (the largest over its blocks).
size_t last_launch_static_shared_bytes();

// A kernel launch that breaks stream order (kernels/simt/runtime.h): it touches a device
// allocation whose last writer (or reader) on another stream it is not ordered after.
class StreamOrderError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Queues a launch on `stream` (a cudaStream_t; nullptr = the legacy default stream) for the
// stream-order checker: each pointer argument inside a device allocation counts as a read and
// a write of that whole allocation. Throws StreamOrderError; returns once the asynchronous
// work the stream depends on has completed (the launch then runs).
void record_kernel_launch(void* stream, dim3 grid, dim3 block, const void* const* pointers, size_t count);

template <typename T>
const void* pointer_argument(const T& value) {
  if constexpr (std::is_pointer_v<T> && std::is_object_v<std::remove_pointer_t<T>>) {
    return static_cast<const void*>(const_cast<const std::remove_cv_t<std::remove_pointer_t<T>>*>(value));
  } else {
    return nullptr;
  }
}

template <typename... KernelArgs, typename... Args>
void launch(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, void* stream, Args&&... args) {
  const void* pointers[] = {pointer_argument<std::decay_t<Args>>(args)..., nullptr};
  record_kernel_launch(stream, grid, block, pointers, sizeof...(Args));
  run_grid(grid, block, shared_bytes, [&]() { kernel(args...); });
}

constexpr int kWarpSize = 32;

inline unsigned int lane_id() {
  const ThreadCoordinates& c = current;
  const unsigned int linear = c.thread_idx.x + c.block_dim.x * (c.thread_idx.y + c.block_dim.y * c.thread_idx.z);
  return linear % kWarpSize;
}

// Only the lane read is copied out (a fixed-size copy the compiler inlines): the emulation of a
// block reduction is dominated by its shuffles.
template <typename T>
T shfl_generic(unsigned int mask, T value, int source_lane, const char* where) {
  static_assert(sizeof(T) <= kWarpLaneBytes, "warp collective on a value larger than 16 bytes");
  const unsigned char* lanes = warp_exchange(mask, &value, sizeof(T), where);
  T result;
  std::memcpy(&result, lanes + static_cast<size_t>(source_lane & (kWarpSize - 1)) * kWarpLaneBytes, sizeof(T));
  return result;
}

// Bits of the lanes in `mask` whose predicate is nonzero.
inline unsigned int ballot(unsigned int mask, int predicate, const char* where) {
  const unsigned char* lanes = warp_exchange(mask, &predicate, sizeof predicate, where);
  unsigned int bits = 0;
  for (int l = 0; l < kWarpSize; ++l) {
    int lane_predicate;
    std::memcpy(&lane_predicate, lanes + static_cast<size_t>(l) * kWarpLaneBytes, sizeof lane_predicate);
    if ((mask >> l & 1u) && lane_predicate != 0) bits |= 1u << l;
  }
  return bits;
}

// __syncwarp(mask): the lanes in the mask wait for each other.
inline void syncwarp(const char* where, unsigned int mask = 0xffffffffu) { (void)ballot(mask, 1, where); }

}  // namespace la3::simt

#define LA3_SIMT_STR2(x) #x
#define LA3_SIMT_STR(x) LA3_SIMT_STR2(x)
#define LA3_SIMT_WHERE __FILE__ ":" LA3_SIMT_STR(__LINE__)

// Kernels live in headers. Internal linkage: a binary may also hold the nvcc build of the same
// kernels (the `cuda` device), whose host launch stubs have the same mangled names; an inline
// definition would be merged with them by the linker and the emulation would call the stub.
#define __global__ static inline
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// Static shared memory is per block (thread_local: each block runs start to finish on one OS
// thread) and is counted against the per-block limit: declare it with LA3_SHARED. A bare
// __shared__ would not be counted, so it does not compile here.
#define __shared__ la3_static_shared_memory_must_be_declared_with_LA3_SHARED
#define LA3_SHARED(type, name, ...)   \
  thread_local type name __VA_ARGS__; \
  ::la3::simt::declare_static_shared(&name, sizeof(name), LA3_SIMT_WHERE)
#define threadIdx (::la3::simt::current.thread_idx)
#define blockIdx (::la3::simt::current.block_idx)
#define blockDim (::la3::simt::current.block_dim)
#define gridDim (::la3::simt::current.grid_dim)
#define warpSize (::la3::simt::kWarpSize)
#define __syncthreads() ::la3::simt::block_barrier(LA3_SIMT_WHERE)
#define __shfl_sync(mask, value, lane) ::la3::simt::shfl_generic((mask), (value), (lane), LA3_SIMT_WHERE)
#define __shfl_xor_sync(mask, value, lane_mask) \
  ::la3::simt::shfl_generic((mask), (value), static_cast<int>(::la3::simt::lane_id()) ^ (lane_mask), LA3_SIMT_WHERE)
#define __syncthreads_count(p) ::la3::simt::block_barrier_reduce((p) ? 1 : 0, 0, LA3_SIMT_WHERE)
#define __syncthreads_and(p) ::la3::simt::block_barrier_reduce((p) ? 1 : 0, 1, LA3_SIMT_WHERE)
#define __syncthreads_or(p) ::la3::simt::block_barrier_reduce((p) ? 1 : 0, 2, LA3_SIMT_WHERE)
#define __ballot_sync(mask, p) ::la3::simt::ballot((mask), (p) ? 1 : 0, LA3_SIMT_WHERE)
#define __any_sync(mask, p) (::la3::simt::ballot((mask), (p) ? 1 : 0, LA3_SIMT_WHERE) != 0u)
#define __all_sync(mask, p) (::la3::simt::ballot((mask), (p) ? 1 : 0, LA3_SIMT_WHERE) == (mask))
#define __syncwarp(...) ::la3::simt::syncwarp(LA3_SIMT_WHERE __VA_OPT__(, ) __VA_ARGS__)
#define LA3_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::la3::simt::dynamic_shared_memory())
#define __shfl_up_sync(mask, value, delta)                                                            \
  ::la3::simt::shfl_generic((mask), (value),                                                          \
                            static_cast<int>(::la3::simt::lane_id()) >= static_cast<int>(delta)       \
                                ? static_cast<int>(::la3::simt::lane_id()) - static_cast<int>(delta)  \
                                : static_cast<int>(::la3::simt::lane_id()),                           \
                            LA3_SIMT_WHERE)
#define __shfl_down_sync(mask, value, delta)                                                              \
  ::la3::simt::shfl_generic((mask), (value),                                                             \
                            static_cast<int>(::la3::simt::lane_id()) + (delta) < ::la3::simt::kWarpSize \
                                ? static_cast<int>(::la3::simt::lane_id()) + (delta)                     \
                                : static_cast<int>(::la3::simt::lane_id()),                              \
                            LA3_SIMT_WHERE)

using la3::simt::dim3;

// Math intrinsics kernels use (sqrtf, tanhf, expf come from <cmath>), with host definitions (results are close to, not
// bit-identical with, the GPU's approximate versions: compare with tolerances).
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __float_as_int(float x) {
  int i;
  std::memcpy(&i, &x, sizeof i);
  return i;
}
inline float __int_as_float(int i) {
  float x;
  std::memcpy(&x, &i, sizeof x);
  return x;
}

// Real atomics (blocks may one day run on several OS threads): CAS loop for float.
inline float atomicAdd(float* address, float value) {
  auto* bits = reinterpret_cast<uint32_t*>(address);
  uint32_t expected = __atomic_load_n(bits, __ATOMIC_RELAXED);
  while (true) {
    float old_value;
    std::memcpy(&old_value, &expected, sizeof old_value);
    const float updated = old_value + value;
    uint32_t desired;
    std::memcpy(&desired, &updated, sizeof desired);
    if (__atomic_compare_exchange_n(bits, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      return old_value;
    }
  }
}
inline int atomicAdd(int* address, int value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }

#endif  // __CUDACC__
