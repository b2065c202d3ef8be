#include "kernels/simt/runtime.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <string>

namespace {

struct DeviceMemory {
  std::mutex mutex;
  std::map<uintptr_t, size_t> live;  // start -> bytes
  size_t in_use = 0;
  size_t capacity = 0;
  DeviceMemory() {
    capacity = size_t{8} << 30;
    if (const char* text = std::getenv("LA3_EMU_DEVICE_BYTES"); text != nullptr && *text != '\0') {
      capacity = static_cast<size_t>(std::strtoull(text, nullptr, 10));
    }
  }
  // True when [pointer, pointer + bytes) lies inside one live allocation.
  bool contains(const void* pointer, size_t bytes) {
    const auto address = reinterpret_cast<uintptr_t>(pointer);
    std::lock_guard<std::mutex> lock(mutex);
    auto it = live.upper_bound(address);
    if (it == live.begin()) return false;
    --it;
    return address >= it->first && address + bytes <= it->first + it->second;
  }
};

DeviceMemory& memory() {
  static DeviceMemory instance;
  return instance;
}

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t record(cudaError_t error) {
  if (error != cudaSuccess) last_error = error;
  return error;
}

bool is_device(cudaMemcpyKind kind, bool destination) {
  switch (kind) {
    case cudaMemcpyHostToDevice: return destination;
    case cudaMemcpyDeviceToHost: return !destination;
    case cudaMemcpyDeviceToDevice: return true;
    default: return false;
  }
}

}  // namespace

struct CUstream_st {
  int unused = 0;
};

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
  }
  return "unrecognized error code";
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return record(cudaErrorInvalidValue);
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  *total_bytes = m.capacity;
  *free_bytes = m.capacity > m.in_use ? m.capacity - m.in_use : 0;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  if (pointer == nullptr) return record(cudaErrorInvalidValue);
  *pointer = nullptr;
  DeviceMemory& m = memory();
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    if (bytes > m.capacity - std::min(m.capacity, m.in_use)) return record(cudaErrorMemoryAllocation);
    m.in_use += bytes;
  }
  // cudaMalloc returns 256-byte aligned memory. Under AddressSanitizer the block is exactly
  // `bytes` long, so a kernel running past the end of its buffer is a heap-buffer-overflow
  // report instead of a silent read of the rounding slack.
#if defined(__SANITIZE_ADDRESS__)
  void* memory_block = nullptr;
  if (posix_memalign(&memory_block, 256, bytes == 0 ? 1 : bytes) != 0) memory_block = nullptr;
#else
  void* memory_block = std::aligned_alloc(256, ((bytes + 255) / 256) * 256 + (bytes == 0 ? 256 : 0));
#endif
  if (memory_block == nullptr) {
    std::lock_guard<std::mutex> lock(m.mutex);
    m.in_use -= bytes;
    return record(cudaErrorMemoryAllocation);
  }
  std::lock_guard<std::mutex> lock(m.mutex);
  m.live[reinterpret_cast<uintptr_t>(memory_block)] = bytes;
  *pointer = memory_block;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  DeviceMemory& m = memory();
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    const auto it = m.live.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == m.live.end()) return record(cudaErrorInvalidValue);
    m.in_use -= it->second;
    m.live.erase(it);
  }
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t /*stream*/) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return record(cudaErrorInvalidValue);
  DeviceMemory& m = memory();
  if (is_device(kind, true) && !m.contains(dst, bytes)) return record(cudaErrorInvalidValue);
  if (is_device(kind, false) && !m.contains(src, bytes)) return record(cudaErrorInvalidValue);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t /*stream*/) {
  if (bytes == 0) return cudaSuccess;
  if (!memory().contains(pointer, bytes)) return record(cudaErrorInvalidValue);
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int /*flags*/) {
  if (stream == nullptr) return record(cudaErrorInvalidValue);
  *stream = new CUstream_st;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t /*stream*/) { return cudaSuccess; }

namespace la3::simt {
size_t emulated_device_bytes_in_use() {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  return m.in_use;
}
size_t emulated_device_capacity() {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  return m.capacity;
}
void set_emulated_device_capacity(size_t bytes) {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.capacity = bytes;
}
}  // namespace la3::simt
