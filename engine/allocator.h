// Memory for tensors. Each device type has one Allocator; the CPU allocator is built in and
// the CUDA backends register theirs (register_allocator) when they initialise, so Tensor code
// never calls malloc/cudaMalloc itself.
#pragma once

#include <atomic>
#include <cstddef>

#include "engine/device.h"

namespace la3 {

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory for `bytes` bytes (64-byte aligned) or throws EngineError(kResourceExhausted).
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* pointer, size_t bytes) = 0;
  // True when the CPU can read and write this memory directly (cpu and cuda-emu).
  virtual bool host_accessible() const = 0;

  size_t bytes_in_use() const { return bytes_in_use_.load(std::memory_order_relaxed); }
  size_t peak_bytes() const { return peak_bytes_.load(std::memory_order_relaxed); }
  // Starts a new peak at the bytes in use now (the trainer reports one peak per log interval).
  void reset_peak_bytes() { peak_bytes_.store(bytes_in_use_.load(std::memory_order_relaxed), std::memory_order_relaxed); }

 protected:
  void note_allocated(size_t bytes);
  void note_freed(size_t bytes);

 private:
  std::atomic<size_t> bytes_in_use_{0};
  std::atomic<size_t> peak_bytes_{0};
};

// Host memory, 64-byte aligned (a cache line; enough for AVX-512 loads).
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override;
  void deallocate(void* pointer, size_t bytes) override;
  bool host_accessible() const override { return true; }
};

// The allocator for a device; throws EngineError(kUnimplemented) when no backend for that
// device type has been registered (e.g. cuda in a build without CUDA).
Allocator& allocator_for(Device device);

// Installs the allocator of a device type (not owned; must outlive every tensor on it).
void register_allocator(DeviceType type, Allocator* allocator);

}  // namespace la3
