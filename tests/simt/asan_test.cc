// Built only into la3_simt_tests_asan (AddressSanitizer): proof that the ASan build of the
// emulated kernels catches a real bug. A kernel without its bounds check reads and writes one
// block past the end of its buffers; the process must die with ASan's heap-buffer-overflow
// report naming the kernel's source line, for host vectors and for emulated cudaMalloc memory
// (which is exactly the requested size under ASan, see kernels/simt/runtime.cc).
#include "kernels/simt/simt.h"
#include "kernels/simt/runtime.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

constexpr int kMissingBoundsCheckLine = __LINE__ + 4;
// Bug on purpose: no `if (i < n)`, so the last block runs past the end of in and out.
__global__ void doubles_without_bounds_check(const float* in, float* out, int /*n*/) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  out[i] = 2.0f * in[i];
}

// The correct kernel, to show the death is the bug's and not the harness's.
__global__ void doubles(const float* in, float* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = 2.0f * in[i];
}

std::string overflow_at_kernel_line() {
  return "heap-buffer-overflow.*in doubles_without_bounds_check .*asan_test\\.cc:" +
         std::to_string(kMissingBoundsCheckLine);
}

// Two blocks of 64 threads over 100 elements: threads 100..127 run past the end.
void overflow_host_vectors() {
  const int n = 100;
  std::vector<float> in(n, 1.5f), out(n, 0.0f);
  la3::simt::launch(doubles_without_bounds_check, dim3(2), dim3(64), 0, nullptr, in.data(), out.data(), n);
}

// The same on emulated device memory: 400 bytes lie inside cudaMalloc's 256-byte rounding
// without ASan. A failed allocation stays nullptr and dies with a SEGV, not the expected report.
void overflow_emulated_device_memory() {
  const int n = 100;
  void* in = nullptr;
  void* out = nullptr;
  (void)cudaMalloc(&in, n * sizeof(float));
  (void)cudaMalloc(&out, n * sizeof(float));
  la3::simt::launch(doubles_without_bounds_check, dim3(2), dim3(64), 0, nullptr, static_cast<const float*>(in),
                    static_cast<float*>(out), n);
}

TEST(AsanKernelDeathTest, BoundsCheckedKernelRunsClean) {
  const int n = 100;
  std::vector<float> in(n, 1.5f), out(n, 0.0f);
  la3::simt::launch(doubles, dim3(2), dim3(64), 0, nullptr, in.data(), out.data(), n);
  for (float value : out) EXPECT_EQ(value, 3.0f);
}

TEST(AsanKernelDeathTest, OutOfBoundsAccessOfAHostBufferIsReportedAtTheKernelLine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // re-executes the binary: no fork with live threads
  EXPECT_DEATH(overflow_host_vectors(), overflow_at_kernel_line());
}

TEST(AsanKernelDeathTest, OutOfBoundsAccessOfEmulatedDeviceMemoryIsReportedAtTheKernelLine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflow_emulated_device_memory(), overflow_at_kernel_line());
}

}  // namespace
