// Device memory cache for the CUDA backends, in the spirit of PyTorch's caching allocator.
//
// cudaMalloc and cudaFree synchronise the device and cost tens of microseconds to
// milliseconds, and a training step frees and re-allocates the same activation sizes every
// step. So freed blocks are kept in per-size free lists and handed out again. Sizes are
// rounded up: to a multiple of 512 bytes below 1 MiB, to a multiple of 2 MiB above, so a
// block serves every request of its size class. When the raw allocation fails, the cache is
// released and the allocation retried once; a second failure is ResourceExhausted naming the
// request, the bytes in use and the bytes cached.
//
// Blocks are reused in the order their frees were issued, which is safe because each CUDA
// backend runs all its work on one stream (a block freed after a kernel that reads it is only
// reused by work queued after that kernel). The cache is plain C++ over two callables, so the
// same code serves `cuda` (cudaMalloc) and `cuda-emu` (the emulated cudaMalloc) and is tested
// without a GPU.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/allocator.h"

namespace la3 {

class CachingAllocator final : public Allocator {
 public:
  struct RawMemory {
    // Returns nullptr when the device is out of memory; throws for any other failure.
    std::function<void*(size_t bytes)> allocate;
    std::function<void(void* pointer)> free;
  };

  CachingAllocator(std::string device_name, RawMemory raw);
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes) override;
  void deallocate(void* pointer, size_t bytes) override;
  bool host_accessible() const override { return false; }

  // Returns every cached block to the device (what torch.cuda.empty_cache() does).
  void release_cached();
  size_t cached_bytes() const;
  // Number of raw allocations made so far (a cache hit makes none).
  size_t raw_allocations() const;

  // The size class of a request (exposed for tests).
  static size_t rounded_size(size_t bytes);

 private:
  void release_cached_locked();

  std::string device_name_;
  RawMemory raw_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;       // rounded size -> block
  std::unordered_map<void*, size_t> live_blocks_;  // block -> rounded size
  size_t cached_bytes_ = 0;
  size_t raw_allocations_ = 0;
};

}  // namespace la3
