// The fiber scheduler behind kernels/simt/simt.h (host emulation only).
#include "kernels/simt/simt.h"

#include "kernels/simt/runtime.h"

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

// AddressSanitizer (the la3_simt_tests_asan build): every switch between the scheduler's
// stack and a fiber's stack is announced with __sanitizer_start_switch_fiber /
// __sanitizer_finish_switch_fiber, so ASan knows which stack is current (exceptions unwinding
// a fiber, stack-use-after-return bookkeeping) and reports no false stack errors.
#include "kernels/simt/asan.h"
#if LA3_SIMT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace la3::simt {

thread_local ThreadCoordinates current;

namespace {

namespace ctx = boost::context;

constexpr size_t kFiberStackBytes = 64 * 1024;
constexpr size_t kLaneBytes = kWarpLaneBytes;  // largest value a warp collective moves

enum class State { kRunnable, kAtBarrier, kAtWarp, kDone };

// Where a stack lies (for the ASan annotations): [bottom, bottom + size).
struct StackBounds {
  const void* bottom = nullptr;
  size_t size = 0;
};

// Fiber stacks with a guard page (an overflow faults instead of corrupting memory). Creating
// one costs an mmap and an mprotect, and every launch creates a block's worth of fibers, so
// each worker thread keeps its released stacks for reuse. `bounds` (optional) receives where
// the stack handed out lies.
class CachedGuardedStack {
 public:
  explicit CachedGuardedStack(StackBounds* bounds = nullptr) : bounds_(bounds) {}
  ctx::stack_context allocate() {
    std::vector<ctx::stack_context>& cache = free_stacks();
    ctx::stack_context stack;
    if (!cache.empty()) {
      stack = cache.back();
      cache.pop_back();
    } else {
      stack = ctx::protected_fixedsize_stack(kFiberStackBytes).allocate();
    }
    if (bounds_ != nullptr) *bounds_ = StackBounds{static_cast<char*>(stack.sp) - stack.size, stack.size};
    return stack;
  }
  void deallocate(ctx::stack_context& stack) noexcept { free_stacks().push_back(stack); }

 private:
  static std::vector<ctx::stack_context>& free_stacks() {
    // Released when the worker thread exits.
    struct Cache {
      std::vector<ctx::stack_context> stacks;
      ~Cache() {
        for (ctx::stack_context& stack : stacks) ctx::protected_fixedsize_stack(kFiberStackBytes).deallocate(stack);
      }
    };
    thread_local Cache cache;
    return cache.stacks;
  }
  StackBounds* bounds_;
};

// ASan fiber-switch annotations (no-ops without ASan). A switch is start_switch on the old
// stack, the jump, finish_switch on the new stack; `fake_stack` keeps the old side's
// stack-use-after-return frames (nullptr when the old side is a fiber that is ending).
inline void asan_start_switch([[maybe_unused]] void** fake_stack, [[maybe_unused]] const StackBounds& to) {
#if LA3_SIMT_ASAN
  __sanitizer_start_switch_fiber(fake_stack, to.bottom, to.size);
#endif
}
inline void asan_finish_switch([[maybe_unused]] void* fake_stack, [[maybe_unused]] StackBounds* from) {
#if LA3_SIMT_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, from != nullptr ? &from->bottom : nullptr,
                                  from != nullptr ? &from->size : nullptr);
#endif
}

struct EmulatedThread {
  ctx::fiber context;    // the thread's own fiber (while it is suspended)
  ctx::fiber scheduler;  // where to go back when the thread waits (while it runs)
  State state = State::kRunnable;
  const char* where = "";
  dim3 thread_idx;
  unsigned int warp = 0, lane = 0, warp_mask = 0;
  unsigned char value[kLaneBytes] = {};  // what this lane offers to the warp
  int barrier_value = 0;   // predicate offered to __syncthreads_count/_and/_or
  int barrier_result[3] = {0, 0, 0};  // count, and, or over the block at release
  StackBounds stack;            // this thread's fiber stack (ASan annotations)
  StackBounds scheduler_stack;  // the worker's stack the scheduler runs on (ASan annotations)
};

// What a warp collective gave back: every lane's offered value (zeros for lanes that did not
// take part), one copy per warp rather than one per receiving lane. A receiver reads it when it
// resumes, which is within the scheduler pass that follows the release, and a warp's next
// release comes only after that pass, so the snapshot is never overwritten before it is read.
struct WarpSnapshot {
  unsigned char lanes[kWarpSize][kLaneBytes];
};

struct Block {
  std::vector<EmulatedThread> threads;
  std::vector<WarpSnapshot> warps;  // by warp index
  std::exception_ptr error;
};

thread_local std::vector<unsigned char> dynamic_shared;

// The static shared memory the blocks of the current launch declared on this worker (LA3_SHARED):
// each array once, by its thread_local address, which is the same for every block of the worker.
struct StaticShared {
  std::vector<const void*> arrays;
  std::string declared_at;  // "file:line (bytes)" of each array, for the error
  size_t bytes = 0;
  size_t dynamic_bytes = 0;  // of the launch, to check the sum against the limit
};
thread_local StaticShared static_shared;
thread_local size_t last_static_shared = 0;  // of the last run_grid this thread made

thread_local Block* running_block = nullptr;
thread_local EmulatedThread* running_thread = nullptr;

void suspend(State state, const char* where) {
  EmulatedThread* self = running_thread;
  self->state = state;
  self->where = where;
  void* fake_stack = nullptr;
  asan_start_switch(&fake_stack, self->scheduler_stack);
  self->scheduler = std::move(self->scheduler).resume();
  asan_finish_switch(fake_stack, &self->scheduler_stack);
}

// Switches into the fiber of `t` and back (the scheduler side of one time slice).
void resume_thread(EmulatedThread& t) {
  void* fake_stack = nullptr;
  asan_start_switch(&fake_stack, t.stack);
  t.context = std::move(t.context).resume();
  asan_finish_switch(fake_stack, nullptr);
}

// Destroys the fibers of threads that never finished (a block that failed): Boost switches
// into each one and unwinds its stack. Under ASan that is announced as a switch to the fiber
// and, once its stack is unwound (it announces nothing itself), a switch back.
struct SuspendedFiberReaper {
  std::vector<EmulatedThread>& threads;
  ~SuspendedFiberReaper() {
    for (EmulatedThread& t : threads) {
      if (!t.context) continue;
      void* fake_stack = nullptr;
      asan_start_switch(&fake_stack, t.stack);
      t.context = ctx::fiber();
      StackBounds here;
      asan_finish_switch(nullptr, &here);  // ASan now takes us for the fiber...
      asan_start_switch(nullptr, here);    // ...which ended: back to this stack
      asan_finish_switch(fake_stack, nullptr);
    }
  }
};

// LA3_SIMT_STRICT=1: divergent barriers are errors (see run_block).
bool strict_mode() {
  const char* strict = std::getenv("LA3_SIMT_STRICT");
  return strict != nullptr && std::string(strict) == "1";
}

// Thread order within a block: forward, reverse, or shuffled (LA3_SIMT_SEED picks the
// permutation), from LA3_SIMT_ORDER.
std::vector<size_t> thread_order(size_t count) {
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  const char* mode = std::getenv("LA3_SIMT_ORDER");
  const std::string name = mode == nullptr ? "forward" : mode;
  if (name == "reverse") {
    for (size_t i = 0; i < count; ++i) order[i] = count - 1 - i;
  } else if (name == "shuffled") {
    const char* seed_text = std::getenv("LA3_SIMT_SEED");
    uint64_t state = seed_text == nullptr ? 1 : std::strtoull(seed_text, nullptr, 10) + 1;
    for (size_t i = count; i > 1; --i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;  // LCG: a fixed, portable shuffle
      std::swap(order[i - 1], order[static_cast<size_t>((state >> 33) % i)]);
    }
  } else if (name != "forward") {
    throw std::invalid_argument("LA3_SIMT_ORDER must be forward, reverse or shuffled, got '" + name + "'");
  }
  return order;
}

// Releases warps whose every lane in the mask has arrived; returns true if any was released.
bool release_warps(Block& block) {
  bool released = false;
  const size_t warps = (block.threads.size() + kWarpSize - 1) / kWarpSize;
  for (size_t w = 0; w < warps; ++w) {
    unsigned int waiting = 0, mask = 0;
    bool blocked = false;
    for (size_t l = 0; l < static_cast<size_t>(kWarpSize); ++l) {
      const size_t index = w * kWarpSize + l;
      if (index >= block.threads.size()) break;
      const EmulatedThread& t = block.threads[index];
      if (t.state == State::kAtWarp) {
        waiting |= 1u << l;
        mask = t.warp_mask;
      }
    }
    if (waiting == 0) continue;
    // Every lane named in the mask must be waiting here (a finished lane can never arrive).
    for (size_t l = 0; l < static_cast<size_t>(kWarpSize); ++l) {
      if ((mask >> l & 1u) == 0) continue;
      const size_t index = w * kWarpSize + l;
      if (index >= block.threads.size() || block.threads[index].state != State::kAtWarp) blocked = true;
    }
    if (blocked) continue;
    WarpSnapshot& snapshot = block.warps[w];
    for (size_t s = 0; s < static_cast<size_t>(kWarpSize); ++s) {
      const size_t source = w * kWarpSize + s;
      if (source < block.threads.size() && (waiting >> s & 1u)) {
        std::memcpy(snapshot.lanes[s], block.threads[source].value, kLaneBytes);
      } else {
        std::memset(snapshot.lanes[s], 0, kLaneBytes);
      }
    }
    for (size_t l = 0; l < static_cast<size_t>(kWarpSize); ++l) {
      const size_t index = w * kWarpSize + l;
      if (index >= block.threads.size() || (waiting >> l & 1u) == 0) continue;
      block.threads[index].state = State::kRunnable;
    }
    released = true;
  }
  return released;
}

std::string waiting_report(const Block& block) {
  std::string report;
  for (size_t i = 0; i < block.threads.size(); ++i) {
    const EmulatedThread& t = block.threads[i];
    if (t.state == State::kDone) continue;
    report += "\n  thread " + std::to_string(i) + (t.state == State::kAtBarrier ? " in __syncthreads at " : " in a warp collective at ") +
              t.where;
  }
  return report;
}

void run_block(dim3 grid, dim3 block_dim, dim3 block_idx, const std::function<void()>& body,
               const std::vector<size_t>& order) {
  Block block;
  std::fill(dynamic_shared.begin(), dynamic_shared.end(), static_cast<unsigned char>(0xFF));
  const size_t count = static_cast<size_t>(block_dim.x) * block_dim.y * block_dim.z;
  block.threads.resize(count);
  block.warps.resize((count + static_cast<size_t>(kWarpSize) - 1) / static_cast<size_t>(kWarpSize));
  const SuspendedFiberReaper reaper{block.threads};
  running_block = &block;
  for (size_t i = 0; i < count; ++i) {
    EmulatedThread& t = block.threads[i];
    t.thread_idx = dim3(static_cast<unsigned>(i % block_dim.x), static_cast<unsigned>((i / block_dim.x) % block_dim.y),
                        static_cast<unsigned>(i / (static_cast<size_t>(block_dim.x) * block_dim.y)));
    t.warp = static_cast<unsigned>(i / kWarpSize);
    t.lane = static_cast<unsigned>(i % kWarpSize);
    t.context = ctx::fiber(std::allocator_arg, CachedGuardedStack(&t.stack),
                           [&block, &t, &body](ctx::fiber&& scheduler) {
                             asan_finish_switch(nullptr, &t.scheduler_stack);
                             t.scheduler = std::move(scheduler);
                             try {
                               body();
                             } catch (const ctx::detail::forced_unwind&) {
                               throw;  // the fiber is being destroyed: let Boost unwind it
                             } catch (...) {
                               if (!block.error) block.error = std::current_exception();
                             }
                             t.state = State::kDone;
                             asan_start_switch(nullptr, t.scheduler_stack);  // this fiber ends
                             return std::move(t.scheduler);
                           });
  }
  while (true) {
    bool ran = false;
    for (size_t step = 0; step < count; ++step) {
      EmulatedThread& t = block.threads[order[step]];
      if (t.state != State::kRunnable) continue;
      running_thread = &t;
      current = ThreadCoordinates{t.thread_idx, block_idx, block_dim, grid};
      resume_thread(t);
      ran = true;
    }
    if (block.error) break;
    size_t live = 0, at_barrier = 0;
    for (const EmulatedThread& t : block.threads) {
      if (t.state == State::kDone) continue;
      ++live;
      at_barrier += t.state == State::kAtBarrier ? 1 : 0;
    }
    if (live == 0) break;
    bool released = release_warps(block);
    if (at_barrier > 0 && at_barrier == live && live < block.threads.size() && strict_mode()) {
      // Strict mode: a barrier that only some threads reach (the others returned) is
      // divergent; CUDA leaves it undefined, so report it instead of releasing it.
      running_block = nullptr;
      throw DeadlockError("SIMT emulation (strict): divergent __syncthreads in block (" + std::to_string(block_idx.x) +
                          ", " + std::to_string(block_idx.y) + ", " + std::to_string(block_idx.z) + "): " +
                          std::to_string(block.threads.size() - live) + " thread(s) returned while others wait:" +
                          waiting_report(block));
    }
    if (at_barrier > 0 && at_barrier == live) {
      // Everyone still running has arrived (finished threads count as arrived). The
      // reductions of __syncthreads_count/_and/_or are taken now, before anyone moves on.
      int count_true = 0, all_true = 1, any_true = 0;
      for (const EmulatedThread& t : block.threads) {
        if (t.state != State::kAtBarrier) continue;
        count_true += t.barrier_value != 0 ? 1 : 0;
        all_true &= t.barrier_value != 0 ? 1 : 0;
        any_true |= t.barrier_value != 0 ? 1 : 0;
      }
      for (EmulatedThread& t : block.threads) {
        if (t.state != State::kAtBarrier) continue;
        t.barrier_result[0] = count_true;
        t.barrier_result[1] = all_true;
        t.barrier_result[2] = any_true;
        t.state = State::kRunnable;
      }
      released = true;
    }
    if (!ran && !released) {
      const std::string report = waiting_report(block);
      running_block = nullptr;
      throw DeadlockError("SIMT emulation: block (" + std::to_string(block_idx.x) + ", " + std::to_string(block_idx.y) +
                          ", " + std::to_string(block_idx.z) + ") cannot make progress:" + report);
    }
  }
  running_block = nullptr;
  if (block.error) std::rethrow_exception(block.error);
}

}  // namespace

void block_barrier(const char* where) { (void)block_barrier_reduce(0, 0, where); }

int block_barrier_reduce(int predicate, int kind, const char* where) {
  if (running_thread == nullptr) throw std::logic_error("__syncthreads outside an emulated kernel");
  running_thread->barrier_value = predicate;
  suspend(State::kAtBarrier, where);
  return running_thread->barrier_result[kind];
}

unsigned char* dynamic_shared_memory() { return dynamic_shared.data(); }

void declare_static_shared(const void* address, size_t bytes, const char* where) {
  if (running_thread == nullptr) throw std::logic_error(std::string("LA3_SHARED outside an emulated kernel at ") + where);
  StaticShared& s = static_shared;
  for (const void* known : s.arrays) {
    if (known == address) return;
  }
  s.arrays.push_back(address);
  s.bytes += bytes;
  s.declared_at += std::string(s.declared_at.empty() ? "" : ", ") + where + " (" + std::to_string(bytes) + ")";
  if (s.bytes + s.dynamic_bytes > kMaxSharedBytesPerBlock) {
    throw std::invalid_argument("SIMT launch: shared memory per block: " + std::to_string(s.bytes) +
                                " bytes static __shared__ [" + s.declared_at + "] + " + std::to_string(s.dynamic_bytes) +
                                " bytes dynamic = " + std::to_string(s.bytes + s.dynamic_bytes) + " bytes, over the " +
                                std::to_string(kMaxSharedBytesPerBlock) +
                                " bytes (48 KB) a launch gets without opt-in");
  }
}

size_t last_launch_static_shared_bytes() { return last_static_shared; }

const unsigned char* warp_exchange(unsigned int mask, const void* value, size_t size, const char* where) {
  EmulatedThread* self = running_thread;
  if (self == nullptr) throw std::logic_error("warp collective outside an emulated kernel");
  if (size > kLaneBytes) throw std::logic_error("warp collective on a value larger than 16 bytes");
  if ((mask >> self->lane & 1u) == 0) {
    throw std::logic_error(std::string("warp collective at ") + where + " called by a lane outside its mask");
  }
  std::memset(self->value, 0, kLaneBytes);
  std::memcpy(self->value, value, size);
  self->warp_mask = mask;
  suspend(State::kAtWarp, where);
  return &running_block->warps[self->warp].lanes[0][0];
}

namespace {

void check_dimension(const char* what, unsigned int value, unsigned int limit) {
  if (value > limit) {
    throw std::invalid_argument(std::string("SIMT launch: ") + what + " = " + std::to_string(value) + ", over the " +
                                std::to_string(limit) + " CUDA allows");
  }
}

// The grid and block a GPU launch accepts (cudaErrorInvalidConfiguration otherwise).
void check_launch_shape(dim3 grid, dim3 block) {
  check_dimension("gridDim.x", grid.x, kMaxGridDimX);
  check_dimension("gridDim.y", grid.y, kMaxGridDimYZ);
  check_dimension("gridDim.z", grid.z, kMaxGridDimYZ);
  check_dimension("blockDim.x", block.x, kMaxBlockDimXY);
  check_dimension("blockDim.y", block.y, kMaxBlockDimXY);
  check_dimension("blockDim.z", block.z, kMaxBlockDimZ);
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  if (threads > kMaxThreadsPerBlock) {
    throw std::invalid_argument("SIMT launch: " + std::to_string(threads) + " threads per block (" +
                                std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
                                std::to_string(block.z) + "), over the " + std::to_string(kMaxThreadsPerBlock) +
                                " CUDA allows");
  }
}

}  // namespace

void run_grid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  const size_t threads = static_cast<size_t>(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0) {
    throw std::invalid_argument("SIMT launch: empty grid or block");
  }
  check_launch_shape(grid, block);
  if (shared_bytes > kMaxDynamicSharedBytes) {
    throw std::invalid_argument("SIMT launch: shared memory per block: " + std::to_string(shared_bytes) +
                                " bytes dynamic, over the " + std::to_string(kMaxSharedBytesPerBlock) +
                                " bytes (48 KB) a launch gets without opt-in");
  }
  const std::vector<size_t> order = thread_order(threads);
  const size_t blocks = static_cast<size_t>(grid.x) * grid.y * grid.z;
  // Blocks are independent: LA3_SIMT_WORKERS OS threads take them from a shared counter.
  // Each block runs start to finish on one worker, so thread_local __shared__ and the
  // dynamic shared buffer stay per block.
  const char* workers_text = std::getenv("LA3_SIMT_WORKERS");
  const size_t workers = std::max<size_t>(1, std::min<size_t>(blocks, workers_text ? std::strtoul(workers_text, nullptr, 10) : 1));
  std::atomic<size_t> next_block{0};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  std::atomic<size_t> static_bytes{0};  // the most any worker counted
  auto work = [&]() {
    dynamic_shared.assign(shared_bytes, static_cast<unsigned char>(0xFF));
    static_shared = StaticShared{};
    static_shared.dynamic_bytes = shared_bytes;
    while (true) {
      const size_t index = next_block.fetch_add(1);
      if (index >= blocks) break;
      {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (first_error) break;
      }
      const dim3 block_idx(static_cast<unsigned>(index % grid.x), static_cast<unsigned>((index / grid.x) % grid.y),
                           static_cast<unsigned>(index / (static_cast<size_t>(grid.x) * grid.y)));
      try {
        run_block(grid, block, block_idx, body, order);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
      }
    }
    running_thread = nullptr;
    size_t seen = static_bytes.load();
    while (seen < static_shared.bytes && !static_bytes.compare_exchange_weak(seen, static_shared.bytes)) {
    }
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (size_t w = 0; w < workers; ++w) pool.emplace_back(work);
    for (std::thread& t : pool) t.join();
  }
  last_static_shared = static_bytes.load();
  if (first_error) std::rethrow_exception(first_error);
}

void record_kernel_launch(void* stream, dim3 grid, dim3 block, const void* const* pointers, size_t count) {
  std::vector<BufferUse> uses;
  for (size_t i = 0; i < count; ++i) {
    if (pointers[i] != nullptr) uses.push_back({pointers[i], Access::kReadWrite, "pointer argument " + std::to_string(i)});
  }
  const std::string what = "kernel launch (grid " + std::to_string(grid.x) + "x" + std::to_string(grid.y) + "x" +
                           std::to_string(grid.z) + ", block " + std::to_string(block.x) + "x" + std::to_string(block.y) +
                           "x" + std::to_string(block.z) + ")";
  if (std::string bad = enqueue_stream_work(static_cast<cudaStream_t>(stream), what, uses); !bad.empty()) {
    throw StreamOrderError(bad);
  }
}

}  // namespace la3::simt
