// The fiber scheduler behind kernels/simt/simt.h (host emulation only).
#include "kernels/simt/simt.h"

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace la3::simt {

thread_local ThreadCoordinates current;

namespace {

namespace ctx = boost::context;

constexpr size_t kFiberStackBytes = 64 * 1024;
constexpr size_t kLaneBytes = 16;  // largest value a warp collective moves

enum class State { kRunnable, kAtBarrier, kAtWarp, kDone };

struct EmulatedThread {
  ctx::fiber context;    // the thread's own fiber (while it is suspended)
  ctx::fiber scheduler;  // where to go back when the thread waits (while it runs)
  State state = State::kRunnable;
  const char* where = "";
  dim3 thread_idx;
  unsigned int warp = 0, lane = 0, warp_mask = 0;
  unsigned char value[kLaneBytes] = {};              // what this lane offers to the warp
  unsigned char lanes[kWarpSize][kLaneBytes] = {};   // what the warp gave back
  size_t value_size = 0;
};

struct Block {
  std::vector<EmulatedThread> threads;
  std::exception_ptr error;
};

thread_local Block* running_block = nullptr;
thread_local EmulatedThread* running_thread = nullptr;

void suspend(State state, const char* where) {
  EmulatedThread* self = running_thread;
  self->state = state;
  self->where = where;
  self->scheduler = std::move(self->scheduler).resume();
}

bool reverse_order() {
  const char* order = std::getenv("LA3_SIMT_ORDER");
  return order != nullptr && std::string(order) == "reverse";
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
    for (size_t l = 0; l < static_cast<size_t>(kWarpSize); ++l) {
      const size_t index = w * kWarpSize + l;
      if (index >= block.threads.size() || (waiting >> l & 1u) == 0) continue;
      EmulatedThread& receiver = block.threads[index];
      for (size_t s = 0; s < static_cast<size_t>(kWarpSize); ++s) {
        const size_t source = w * kWarpSize + s;
        if (source < block.threads.size() && (waiting >> s & 1u)) {
          std::memcpy(receiver.lanes[s], block.threads[source].value, kLaneBytes);
        } else {
          std::memset(receiver.lanes[s], 0, kLaneBytes);
        }
      }
      receiver.state = State::kRunnable;
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

void run_block(dim3 grid, dim3 block_dim, dim3 block_idx, const std::function<void()>& body, bool reverse) {
  Block block;
  const size_t count = static_cast<size_t>(block_dim.x) * block_dim.y * block_dim.z;
  block.threads.resize(count);
  running_block = &block;
  for (size_t i = 0; i < count; ++i) {
    EmulatedThread& t = block.threads[i];
    t.thread_idx = dim3(static_cast<unsigned>(i % block_dim.x), static_cast<unsigned>((i / block_dim.x) % block_dim.y),
                        static_cast<unsigned>(i / (static_cast<size_t>(block_dim.x) * block_dim.y)));
    t.warp = static_cast<unsigned>(i / kWarpSize);
    t.lane = static_cast<unsigned>(i % kWarpSize);
    t.context = ctx::fiber(std::allocator_arg, ctx::protected_fixedsize_stack(kFiberStackBytes),
                           [&block, &t, &body](ctx::fiber&& scheduler) {
                             t.scheduler = std::move(scheduler);
                             try {
                               body();
                             } catch (const ctx::detail::forced_unwind&) {
                               throw;  // the fiber is being destroyed: let Boost unwind it
                             } catch (...) {
                               if (!block.error) block.error = std::current_exception();
                             }
                             t.state = State::kDone;
                             return std::move(t.scheduler);
                           });
  }
  while (true) {
    bool ran = false;
    for (size_t step = 0; step < count; ++step) {
      EmulatedThread& t = block.threads[reverse ? count - 1 - step : step];
      if (t.state != State::kRunnable) continue;
      running_thread = &t;
      current = ThreadCoordinates{t.thread_idx, block_idx, block_dim, grid};
      t.context = std::move(t.context).resume();
      ran = true;
    }
    if (block.error) break;
    size_t live = 0, at_barrier = 0, at_warp = 0;
    for (const EmulatedThread& t : block.threads) {
      if (t.state == State::kDone) continue;
      ++live;
      at_barrier += t.state == State::kAtBarrier ? 1 : 0;
      at_warp += t.state == State::kAtWarp ? 1 : 0;
    }
    if (live == 0) break;
    bool released = release_warps(block);
    if (at_barrier > 0 && at_barrier == live) {
      // Everyone still running has arrived (finished threads count as arrived).
      for (EmulatedThread& t : block.threads) {
        if (t.state == State::kAtBarrier) t.state = State::kRunnable;
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

void block_barrier(const char* where) {
  if (running_thread == nullptr) throw std::logic_error("__syncthreads outside an emulated kernel");
  suspend(State::kAtBarrier, where);
}

void warp_exchange(unsigned int mask, const void* value, size_t size, void* lanes, const char* where) {
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
  for (int l = 0; l < kWarpSize; ++l) std::memcpy(static_cast<char*>(lanes) + l * size, self->lanes[l], size);
}

void run_grid(dim3 grid, dim3 block, const std::function<void()>& body) {
  const bool reverse = reverse_order();
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) run_block(grid, block, dim3(x, y, z), body, reverse);
    }
  }
  running_thread = nullptr;
}

}  // namespace la3::simt
