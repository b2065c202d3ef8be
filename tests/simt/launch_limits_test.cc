// The SIMT emulation refuses what a GPU launch refuses (docs/CUDA.md, The SIMT emulation),
// launched through the cuda-emu backend's launch path (engine/cuda/launch.h, StreamLaunch):
//   - shared memory per block, static (LA3_SHARED) + dynamic, over 48 KB (no opt-in);
//   - gridDim.x over 2^31 - 1, gridDim.y / z over 65,535, blockDim.x / y over 1024,
//     blockDim.z over 64, more than 1024 threads per block;
//   - a pointer argument that is not null and not inside a live device allocation (a host
//     pointer, which the emulation could read and a GPU kernel faults on).
// The kernels refused here throw when they run, so a launch that is wrongly accepted fails fast
// with another message instead of running 2^31 blocks.
#include "kernels/simt/simt.h"
#include "kernels/simt/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/launch.h"
#include "engine/error.h"

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using la3::cuda_emu::StreamLaunch;

constexpr size_t kLimit = 48 * 1024;

__global__ void must_not_run_kernel() { throw std::runtime_error("the refused launch ran"); }

__global__ void empty_kernel() {}

// 4096 bytes of static shared memory; writes one element so the array is used.
__global__ void static_shared_kernel(float* out) {
  LA3_SHARED(float, staged, [1024]);
  staged[threadIdx.x] = 1.0f;
  __syncthreads();
  if (out != nullptr && threadIdx.x == 0) out[blockIdx.x] = staged[0];
}

// The same array declared twice on the way (a device function called twice) counts once.
__device__ float* shared_row() {
  LA3_SHARED(float, row, [256]);
  return row;
}
__global__ void shared_twice_kernel() {
  shared_row()[threadIdx.x] = 1.0f;
  shared_row()[threadIdx.x] += 1.0f;
}

std::string launch_error(const std::function<void()>& launch) {
  try {
    launch();
  } catch (const la3::EngineError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(LaunchLimits, StaticPlusDynamicSharedMemoryOverTheBlockLimitIsRefused) {
  const StreamLaunch launch{nullptr};
  // 4096 static + 45056 dynamic = 49152: the limit exactly, accepted.
  EXPECT_NO_THROW(launch(static_shared_kernel, dim3(2), dim3(32), kLimit - 4096, static_cast<float*>(nullptr)));
  EXPECT_EQ(la3::simt::last_launch_static_shared_bytes(), 4096u);
  // One byte more is what a GPU refuses.
  EXPECT_THAT(launch_error([&] {
                launch(static_shared_kernel, dim3(2), dim3(32), kLimit - 4096 + 1, static_cast<float*>(nullptr));
              }),
              AllOf(HasSubstr("shared memory per block"), HasSubstr("4096 bytes static"),
                    HasSubstr("45057 bytes dynamic"), HasSubstr("= 49153 bytes"), HasSubstr("over the 49152"),
                    HasSubstr("launch_limits_test.cc")));
}

TEST(LaunchLimits, DynamicSharedMemoryAloneOverTheBlockLimitIsRefused) {
  const StreamLaunch launch{nullptr};
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1), dim3(32), kLimit + 1); }),
              AllOf(HasSubstr("shared memory per block"), HasSubstr("49153 bytes dynamic"),
                    HasSubstr("over the 49152")));
}

TEST(LaunchLimits, AStaticArrayCountsOncePerBlock) {
  const StreamLaunch launch{nullptr};
  // 1024 bytes static, declared twice per thread: 1024 + (kLimit - 1024) fits.
  EXPECT_NO_THROW(launch(shared_twice_kernel, dim3(3), dim3(256), kLimit - 1024));
  EXPECT_EQ(la3::simt::last_launch_static_shared_bytes(), 1024u);
}

TEST(LaunchLimits, GridDimensionsOverTheirLimitsAreRefused) {
  const StreamLaunch launch{nullptr};
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(2147483648u), dim3(1), 0); }),
              HasSubstr("gridDim.x = 2147483648, over the 2147483647 CUDA allows"));
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1, 65536), dim3(1), 0); }),
              HasSubstr("gridDim.y = 65536, over the 65535 CUDA allows"));
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1, 1, 65536), dim3(1), 0); }),
              HasSubstr("gridDim.z = 65536, over the 65535 CUDA allows"));
  // At the limits (one thread per block, an empty kernel): accepted.
  EXPECT_NO_THROW(launch(empty_kernel, dim3(1, 65535), dim3(1), 0));
}

TEST(LaunchLimits, BlockDimensionsOverTheirLimitsAreRefused) {
  const StreamLaunch launch{nullptr};
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1), dim3(1025), 0); }),
              HasSubstr("blockDim.x = 1025, over the 1024 CUDA allows"));
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1), dim3(1, 1025), 0); }),
              HasSubstr("blockDim.y = 1025, over the 1024 CUDA allows"));
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1), dim3(1, 1, 65), 0); }),
              HasSubstr("blockDim.z = 65, over the 64 CUDA allows"));
  EXPECT_THAT(launch_error([&] { launch(must_not_run_kernel, dim3(1), dim3(32, 32, 2), 0); }),
              HasSubstr("2048 threads per block (32x32x2), over the 1024 CUDA allows"));
  EXPECT_NO_THROW(launch(empty_kernel, dim3(1), dim3(16, 1, 64), 0));
}

__global__ void copy_kernel(const float* in, float* out, int n) {
  const int i = static_cast<int>(threadIdx.x);
  if (i < n) out[i] = in[i];
}

TEST(LaunchLimits, PointerArgumentsOutsideDeviceMemoryAreRefused) {
  const StreamLaunch launch{nullptr};
  void* device = nullptr;
  ASSERT_EQ(cudaMalloc(&device, 32 * sizeof(float)), cudaSuccess);
  auto* in = static_cast<float*>(device);
  ASSERT_EQ(cudaMemsetAsync(in, 0, 32 * sizeof(float), nullptr), cudaSuccess);
  std::vector<float> host(32, 0.0f);
  // A host pointer (std::vector memory) as argument 1: what works on the CPU and faults on a GPU.
  EXPECT_THAT(launch_error([&] {
                launch(copy_kernel, dim3(1), dim3(32), 0, static_cast<const float*>(in), host.data(), 32);
              }),
              AllOf(HasSubstr("pointer argument 1"), HasSubstr("is not device memory"),
                    HasSubstr("null or inside a live device allocation")));
  // Device memory, null, and one past the end (an empty range) are what a GPU takes.
  EXPECT_NO_THROW(launch(copy_kernel, dim3(1), dim3(32), 0, static_cast<const float*>(in), in + 16, 16));
  EXPECT_NO_THROW(launch(copy_kernel, dim3(1), dim3(32), 0, static_cast<const float*>(nullptr), in + 32, 0));
  ASSERT_EQ(cudaFree(device), cudaSuccess);
  // A freed allocation is no longer device memory.
  EXPECT_THAT(launch_error([&] { launch(copy_kernel, dim3(1), dim3(32), 0, static_cast<const float*>(in), in, 0); }),
              AllOf(HasSubstr("pointer argument 0"), HasSubstr("is not device memory")));
}

}  // namespace
