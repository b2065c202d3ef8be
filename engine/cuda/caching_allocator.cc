#include "engine/cuda/caching_allocator.h"

#include <utility>

#include "engine/error.h"

namespace la3 {

namespace {
constexpr size_t kSmallLimit = size_t{1} << 20;
constexpr size_t kSmallRounding = 512;
constexpr size_t kLargeRounding = size_t{2} << 20;
}  // namespace

CachingAllocator::CachingAllocator(std::string device_name, RawMemory raw)
    : device_name_(std::move(device_name)), raw_(std::move(raw)) {}

CachingAllocator::~CachingAllocator() {
  // Blocks still live belong to tensors that outlive the backend (static destruction order);
  // they are left to the driver's teardown. Cached ones go back now.
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

size_t CachingAllocator::rounded_size(size_t bytes) {
  if (bytes == 0) return kSmallRounding;
  if (bytes < kSmallLimit) return (bytes + kSmallRounding - 1) / kSmallRounding * kSmallRounding;
  return (bytes + kLargeRounding - 1) / kLargeRounding * kLargeRounding;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = rounded_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = free_blocks_.find(size); it != free_blocks_.end()) {
    void* block = it->second;
    free_blocks_.erase(it);
    cached_bytes_ -= size;
    live_blocks_.emplace(block, size);
    note_allocated(bytes);
    return block;
  }
  void* block = raw_.allocate(size);
  if (block == nullptr && cached_bytes_ > 0) {
    release_cached_locked();
    block = raw_.allocate(size);
  }
  if (block == nullptr) {
    Fail(ErrorKind::kResourceExhausted, device_name_, ": out of memory allocating ", bytes, " bytes (",
         bytes_in_use(), " bytes in use by tensors, peak ", peak_bytes(), ")");
  }
  ++raw_allocations_;
  live_blocks_.emplace(block, size);
  note_allocated(bytes);
  return block;
}

void CachingAllocator::deallocate(void* pointer, size_t bytes) {
  if (pointer == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = live_blocks_.find(pointer);
  if (it == live_blocks_.end()) {
    Fail(ErrorKind::kInternal, device_name_, ": freeing a block this allocator did not hand out");
  }
  free_blocks_.emplace(it->second, pointer);
  cached_bytes_ += it->second;
  live_blocks_.erase(it);
  note_freed(bytes);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (const auto& [size, block] : free_blocks_) raw_.free(block);
  free_blocks_.clear();
  cached_bytes_ = 0;
}

size_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

size_t CachingAllocator::raw_allocations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return raw_allocations_;
}

}  // namespace la3
