#include "engine/allocator.h"

#include <array>
#include <cstdlib>
#include <mutex>

#include "engine/error.h"

namespace la3 {

void Allocator::note_allocated(size_t bytes) {
  const size_t now = bytes_in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  size_t peak = peak_bytes_.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void Allocator::note_freed(size_t bytes) {
  bytes_in_use_.fetch_sub(bytes, std::memory_order_relaxed);
}

namespace {
constexpr size_t kCpuAlignment = 64;
}  // namespace

void* CpuAllocator::allocate(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; a zero-element tensor still gets a
  // valid (unused) pointer so data() is never null for a defined tensor.
  const size_t rounded = ((bytes + kCpuAlignment - 1) / kCpuAlignment) * kCpuAlignment;
  void* pointer = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
  if (pointer == nullptr) {
    Fail(ErrorKind::kResourceExhausted, "cpu allocator: out of memory allocating ", bytes,
         " bytes (", bytes_in_use(), " bytes in use)");
  }
  note_allocated(bytes);
  return pointer;
}

void CpuAllocator::deallocate(void* pointer, size_t bytes) {
  std::free(pointer);
  note_freed(bytes);
}

namespace {

struct AllocatorRegistry {
  std::mutex mutex;
  CpuAllocator cpu;
  std::array<Allocator*, 3> by_type{&cpu, nullptr, nullptr};
};

AllocatorRegistry& registry() {
  static AllocatorRegistry instance;
  return instance;
}

}  // namespace

Allocator& allocator_for(Device device) {
  AllocatorRegistry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  Allocator* allocator = reg.by_type[static_cast<size_t>(device.type)];
  if (allocator == nullptr) {
    Fail(ErrorKind::kUnimplemented, "no allocator for device ", device_name(device),
         ": its backend is not available in this build or was not initialised");
  }
  return *allocator;
}

void register_allocator(DeviceType type, Allocator* allocator) {
  AllocatorRegistry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  reg.by_type[static_cast<size_t>(type)] = allocator;
}

}  // namespace la3
