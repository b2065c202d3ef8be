// The emulated runtime's counters (la3::simt::runtime_counters): every call that makes the host
// wait for the device is counted once, queued work is not, and copies count their bytes by
// direction. Tests of the trainer rely on these numbers, so each call is checked on its own.
#include "kernels/simt/simt.h"
#include "kernels/simt/runtime.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/tensor.h"

namespace {

using la3::simt::RuntimeCounters;
using la3::simt::runtime_counters;

__global__ void double_all(float* x, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] *= 2.0f;
}

// The counters' change over `work`.
template <typename Work>
RuntimeCounters delta(Work work) {
  const RuntimeCounters before = runtime_counters();
  work();
  const RuntimeCounters after = runtime_counters();
  RuntimeCounters d;
  d.host_synchronizations = after.host_synchronizations - before.host_synchronizations;
  d.stream_synchronizations = after.stream_synchronizations - before.stream_synchronizations;
  d.event_synchronizations = after.event_synchronizations - before.event_synchronizations;
  d.device_synchronizations = after.device_synchronizations - before.device_synchronizations;
  d.synchronous_copies = after.synchronous_copies - before.synchronous_copies;
  d.synchronizing_frees = after.synchronizing_frees - before.synchronizing_frees;
  d.device_to_host_copies = after.device_to_host_copies - before.device_to_host_copies;
  d.device_to_host_bytes = after.device_to_host_bytes - before.device_to_host_bytes;
  d.host_to_device_copies = after.host_to_device_copies - before.host_to_device_copies;
  d.host_to_device_bytes = after.host_to_device_bytes - before.host_to_device_bytes;
  return d;
}

TEST(RuntimeCounters, EachWaitingCallCountsOnceAndQueuedWorkNever) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  void* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, 64 * sizeof(float)), cudaSuccess);
  std::vector<float> host(64, 1.5f);

  RuntimeCounters d = delta([&] {
    ASSERT_EQ(cudaMemcpyAsync(device, host.data(), 64 * sizeof(float), cudaMemcpyHostToDevice, stream), cudaSuccess);
    la3::simt::launch(double_all, dim3(2), dim3(32), 0, stream, static_cast<float*>(device), 64);
    ASSERT_EQ(cudaMemcpyAsync(host.data(), device, 16 * sizeof(float), cudaMemcpyDeviceToHost, stream), cudaSuccess);
  });
  EXPECT_EQ(d.host_synchronizations, 0u) << "queued copies and launches do not wait";
  EXPECT_EQ(d.host_to_device_copies, 1u);
  EXPECT_EQ(d.host_to_device_bytes, 256u);
  EXPECT_EQ(d.device_to_host_copies, 1u);
  EXPECT_EQ(d.device_to_host_bytes, 64u);

  d = delta([&] { ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess); });
  EXPECT_EQ(d.host_synchronizations, 1u);
  EXPECT_EQ(d.stream_synchronizations, 1u);
  EXPECT_EQ(host[0], 3.0f);

  cudaEvent_t event = nullptr;
  ASSERT_EQ(cudaEventCreate(&event), cudaSuccess);
  d = delta([&] {
    ASSERT_EQ(cudaEventRecord(event, stream), cudaSuccess);
    ASSERT_EQ(cudaEventQuery(event), cudaSuccess);  // polling is not waiting
    ASSERT_EQ(cudaEventSynchronize(event), cudaSuccess);
  });
  EXPECT_EQ(d.host_synchronizations, 1u);
  EXPECT_EQ(d.event_synchronizations, 1u);

  d = delta([&] { ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess); });
  EXPECT_EQ(d.host_synchronizations, 1u);
  EXPECT_EQ(d.device_synchronizations, 1u);

  float value = 0.0f;
  d = delta([&] {
    ASSERT_EQ(cudaMemcpy(&value, device, sizeof value, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(device, host.data(), 8, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(host.data() + 1, host.data(), 4, cudaMemcpyHostToHost), cudaSuccess);  // waits for nothing
  });
  EXPECT_EQ(value, 3.0f);
  EXPECT_EQ(d.host_synchronizations, 2u);
  EXPECT_EQ(d.synchronous_copies, 2u);
  EXPECT_EQ(d.device_to_host_bytes, 4u);
  EXPECT_EQ(d.host_to_device_bytes, 8u);

  // A failing copy (past the end of the buffer) moves nothing and waits for nothing.
  d = delta([&] {
    EXPECT_EQ(cudaMemcpy(host.data(), device, 65 * sizeof(float), cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  });
  EXPECT_EQ(d.host_synchronizations, 0u);
  EXPECT_EQ(d.device_to_host_bytes, 0u);
  cudaGetLastError();

  d = delta([&] { ASSERT_EQ(cudaFree(device), cudaSuccess); });
  EXPECT_EQ(d.synchronizing_frees, 1u);
  EXPECT_EQ(d.host_synchronizations, 1u);
  ASSERT_EQ(cudaEventDestroy(event), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
}

TEST(RuntimeCounters, AScalarReadOnTheEmulatedDeviceIsOneSynchronisationAndItsBytes) {
  la3::register_cuda_emu_backend();
  const la3::Device emu{la3::DeviceType::kCudaEmu, 0};
  const la3::Tensor x = la3::Tensor::from_vector<float>({3}, {1.0f, 2.0f, 3.0f}, emu);
  RuntimeCounters d = delta([&] { EXPECT_EQ(x.item(2), 3.0); });
  EXPECT_EQ(d.host_synchronizations, 1u);
  EXPECT_EQ(d.device_to_host_copies, 1u);
  EXPECT_EQ(d.device_to_host_bytes, sizeof(float));

  la3::simt::reset_runtime_counters();
  const RuntimeCounters zero = runtime_counters();
  EXPECT_EQ(zero.host_synchronizations, 0u);
  EXPECT_EQ(zero.device_to_host_bytes, 0u);
}

// An asynchronous upload waits for nothing and keeps its host memory alive until the device
// is next synchronised: the queued copy may still read it (on a GPU; the emulation copies at
// once, so what is checked is that the owner outlives the call and not the next wait).
TEST(RuntimeCounters, AnAsynchronousUploadWaitsForNothingAndHoldsItsHostMemoryUntilTheNextWait) {
  la3::register_cuda_emu_backend();
  const la3::Device emu{la3::DeviceType::kCudaEmu, 0};
  la3::Backend& backend = la3::backend_for(emu);
  const la3::Tensor device = la3::Tensor::empty({4}, la3::DType::kI64, emu);
  std::weak_ptr<std::vector<int64_t>> watched;
  RuntimeCounters d = delta([&] {
    auto host = std::make_shared<std::vector<int64_t>>(std::vector<int64_t>{7, 8, 9, 10});
    watched = host;
    backend.copy_from_host_async(device.data<int64_t>(), host->data(), 4 * sizeof(int64_t), host);
  });
  EXPECT_EQ(d.host_synchronizations, 0u);
  EXPECT_EQ(d.host_to_device_copies, 1u);
  EXPECT_EQ(d.host_to_device_bytes, 32u);
  EXPECT_FALSE(watched.expired()) << "the backend holds the host memory of the queued copy";
  d = delta([&] { backend.synchronize(); });
  EXPECT_EQ(d.host_synchronizations, 1u);
  EXPECT_TRUE(watched.expired()) << "released once the stream has passed the copy";

  // Tensor::to_device_async: the same, for a tensor's storage; a read (copy_to_host) is a
  // synchronisation and releases it too.
  la3::Tensor on_device;
  d = delta([&] {
    on_device = la3::Tensor::from_vector<int64_t>({3}, {4, 5, 6}).narrow(0, 1, 2).to_device_async(emu);
  });
  EXPECT_EQ(d.host_synchronizations, 0u);
  EXPECT_EQ(d.host_to_device_bytes, 2 * sizeof(int64_t));
  EXPECT_EQ(on_device.to_device(la3::Device::cpu()).to_vector<int64_t>(), (std::vector<int64_t>{5, 6}));
}

TEST(RuntimeCounters, PeakDeviceBytesFollowTheMostAllocatedAtOnceAndResetToTheBytesInUse) {
  const size_t base = la3::simt::emulated_device_bytes_in_use();
  la3::simt::reset_emulated_device_peak();
  EXPECT_EQ(la3::simt::emulated_device_peak_bytes(), base);
  void* a = nullptr;
  void* b = nullptr;
  ASSERT_EQ(cudaMalloc(&a, 1000), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&b, 3000), cudaSuccess);
  ASSERT_EQ(cudaFree(b), cudaSuccess);
  EXPECT_EQ(la3::simt::emulated_device_peak_bytes(), base + 4000);
  la3::simt::reset_emulated_device_peak();
  EXPECT_EQ(la3::simt::emulated_device_peak_bytes(), base + 1000);
  ASSERT_EQ(cudaFree(a), cudaSuccess);
  EXPECT_EQ(la3::simt::emulated_device_peak_bytes(), base + 1000);
}

}  // namespace
