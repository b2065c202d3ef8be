// The memory layer of the CUDA backends, tested without a GPU: the caching allocator (over
// fake raw memory and over the emulated cudaMalloc), the emulated runtime's checks, and
// tensors moving between the cpu and a device whose memory the host may not touch.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/caching_allocator.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/error.h"
#include "engine/tensor.h"
#include "kernels/simt/runtime.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

const Device kEmu{DeviceType::kCudaEmu, 0};

// Raw memory that records what the cache asks of it and can be told to run out.
struct FakeDevice {
  size_t capacity = 1 << 24;
  size_t used = 0;
  int allocations = 0, frees = 0;
  std::set<void*> live;
  CachingAllocator::RawMemory raw() {
    return {[this](size_t bytes) -> void* {
              if (used + bytes > capacity) return nullptr;
              used += bytes;
              ++allocations;
              void* p = ::operator new(bytes);
              live.insert(p);
              sizes.push_back(bytes);
              return p;
            },
            [this](void* p) {
              ++frees;
              live.erase(p);
              ::operator delete(p);
              used -= sizes.back();  // sizes are uniform in the tests that run out of memory
            }};
  }
  std::vector<size_t> sizes;
};

TEST(CachingAllocator, RoundsSizesIntoClasses) {
  EXPECT_EQ(CachingAllocator::rounded_size(0), 512u);
  EXPECT_EQ(CachingAllocator::rounded_size(1), 512u);
  EXPECT_EQ(CachingAllocator::rounded_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::rounded_size((1 << 20) - 1), size_t{1} << 20);
  EXPECT_EQ(CachingAllocator::rounded_size((1 << 20) + 1), size_t{2} << 20);
  EXPECT_EQ(CachingAllocator::rounded_size((5 << 20) + 7), size_t{6} << 20);
}

TEST(CachingAllocator, ReusesFreedBlocksOfTheSameClass) {
  FakeDevice device;
  CachingAllocator cache("fake:0", device.raw());
  void* a = cache.allocate(1000);
  cache.deallocate(a, 1000);
  EXPECT_EQ(cache.cached_bytes(), 1024u);
  void* b = cache.allocate(900);  // same 1024-byte class: the cached block, no raw allocation
  EXPECT_EQ(b, a);
  EXPECT_EQ(device.allocations, 1);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  void* c = cache.allocate(2000);  // another class
  EXPECT_NE(c, a);
  EXPECT_EQ(device.allocations, 2);
  EXPECT_EQ(cache.bytes_in_use(), 2900u);
  cache.deallocate(b, 900);
  cache.deallocate(c, 2000);
  EXPECT_EQ(cache.bytes_in_use(), 0u);
  EXPECT_EQ(cache.peak_bytes(), 2900u);
  cache.release_cached();
  EXPECT_EQ(device.frees, 2);
  EXPECT_TRUE(device.live.empty());
}

TEST(CachingAllocator, ReleasesTheCacheAndRetriesWhenTheDeviceIsFull) {
  FakeDevice device;
  device.capacity = 3 * 512;
  CachingAllocator cache("fake:0", device.raw());
  void* small[3];
  for (void*& p : small) p = cache.allocate(100);  // three 512-byte blocks fill the device
  for (void* p : small) cache.deallocate(p, 100);
  // A 1024-byte request fits only after the cached 512-byte blocks are returned.
  device.sizes.assign(3, 512);
  void* big = cache.allocate(1000);
  EXPECT_NE(big, nullptr);
  EXPECT_EQ(device.frees, 3);
  EXPECT_EQ(cache.cached_bytes(), 0u);
  // Now nothing can be freed: a clear error naming the device and the request.
  try {
    cache.allocate(4096);
    FAIL() << "expected out of memory";
  } catch (const EngineError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kResourceExhausted);
    EXPECT_THAT(error.what(), HasSubstr("fake:0: out of memory allocating 4096 bytes"));
  }
  cache.deallocate(big, 1000);
}

TEST(CachingAllocator, RejectsForeignPointers) {
  FakeDevice device;
  CachingAllocator cache("fake:0", device.raw());
  int not_ours = 0;
  EXPECT_THROW(cache.deallocate(&not_ours, 4), EngineError);
  void* p = cache.allocate(10);
  cache.deallocate(p, 10);
  EXPECT_THROW(cache.deallocate(p, 10), EngineError);  // double free
}

TEST(EmulatedRuntime, ChecksDeviceBuffersLikeTheRealRuntimeShould) {
  void* buffer = nullptr;
  ASSERT_EQ(cudaMalloc(&buffer, 64), cudaSuccess);
  std::vector<char> host(128, 7);
  EXPECT_EQ(cudaMemcpy(buffer, host.data(), 64, cudaMemcpyHostToDevice), cudaSuccess);
  // One byte past the end of the device buffer, either direction, is refused.
  EXPECT_EQ(cudaMemcpy(buffer, host.data(), 65, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(host.data(), static_cast<char*>(buffer) + 1, 64, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemsetAsync(static_cast<char*>(buffer) + 60, 0, 8, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // reading clears it
  // A host pointer is not a device buffer.
  EXPECT_EQ(cudaMemcpy(host.data(), host.data() + 64, 8, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(buffer), cudaSuccess);
  EXPECT_EQ(cudaFree(buffer), cudaErrorInvalidValue);  // double free
  cudaGetLastError();
  EXPECT_STREQ(cudaGetErrorName(cudaErrorMemoryAllocation), "cudaErrorMemoryAllocation");
}

TEST(EmulatedRuntime, RunsOutOfMemoryAtItsCapacity) {
  const size_t capacity = simt::emulated_device_capacity();
  simt::set_emulated_device_capacity(simt::emulated_device_bytes_in_use() + 1024);
  void* buffer = nullptr;
  EXPECT_EQ(cudaMalloc(&buffer, 4096), cudaErrorMemoryAllocation);
  EXPECT_EQ(buffer, nullptr);
  cudaGetLastError();
  simt::set_emulated_device_capacity(capacity);
}

TEST(CudaEmuMemory, TensorsMoveBetweenTheCpuAndTheDevice) {
  register_cuda_emu_backend();
  const Tensor host = Tensor::from_vector<float>({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const Tensor device = host.to_device(kEmu);
  EXPECT_FALSE(device.host_accessible());
  EXPECT_EQ(device.to_vector<float>(), host.to_vector<float>());
  EXPECT_EQ(device.item(5), 5.0);
  // A strided view of device memory, copied out, and written into.
  const Tensor column = device.narrow(1, 1, 2);
  EXPECT_FALSE(column.is_contiguous());
  EXPECT_EQ(column.to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  column.copy_from(Tensor::from_vector<float>({3, 2}, {-1, -2, -5, -6, -9, -10}));
  EXPECT_EQ(device.to_vector<float>(), (std::vector<float>{0, -1, -2, 3, 4, -5, -6, 7, 8, -9, -10, 11}));
  // dtype conversions and fills on the device.
  EXPECT_EQ(device.to(DType::kBF16).to(DType::kF32).to_vector<float>(), device.to_vector<float>());
  const Tensor ids = Tensor::full({2, 2}, 7.0, DType::kI64, kEmu);
  EXPECT_EQ(ids.to_vector<int64_t>(), (std::vector<int64_t>{7, 7, 7, 7}));
  EXPECT_EQ(ids.clone().device(), kEmu);
}

TEST(CudaEmuMemory, OutOfDeviceMemoryIsAnErrorNotACrash) {
  register_cuda_emu_backend();
  const size_t capacity = simt::emulated_device_capacity();
  simt::set_emulated_device_capacity(simt::emulated_device_bytes_in_use() + (64 << 20));
  try {
    const Tensor huge = Tensor::empty({int64_t{1} << 28}, DType::kF32, kEmu);  // 1 GiB
    FAIL() << "expected out of memory, got " << huge.describe();
  } catch (const EngineError& error) {
    EXPECT_EQ(error.kind(), ErrorKind::kResourceExhausted);
    EXPECT_THAT(error.what(), HasSubstr("cuda-emu: out of memory allocating 1073741824 bytes"));
  }
  simt::set_emulated_device_capacity(capacity);
  // The device still works afterwards.
  EXPECT_EQ(Tensor::full({4}, 2.0, DType::kF32, kEmu).to_vector<float>(), (std::vector<float>{2, 2, 2, 2}));
}

}  // namespace
}  // namespace la3
