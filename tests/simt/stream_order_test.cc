// The emulated runtime's streams, events and stream-order checker (kernels/simt/runtime.h):
// work on one stream that touches a buffer another stream wrote (or read) without an event
// wait in between is an error naming both, at the moment it is queued; the host must
// synchronise before it reads; asynchronous work completes in stream order and blocks the
// work that waited for it; the log records the order of queued work per stream.
#include "kernels/simt/simt.h"
#include "kernels/simt/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/cuda_devices.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

__global__ void add_one(float* x, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += 1.0f;
}

void run_add_one(float* x, int n, cudaStream_t stream) {
  la3::simt::launch(add_one, dim3(1), dim3(32), 0, stream, x, n);
}

// A device buffer of n floats set to `value`.
float* device_floats(int n, float value) {
  void* pointer = nullptr;
  EXPECT_EQ(cudaMalloc(&pointer, sizeof(float) * static_cast<size_t>(n)), cudaSuccess);
  std::vector<float> host(static_cast<size_t>(n), value);
  EXPECT_EQ(cudaMemcpy(pointer, host.data(), sizeof(float) * static_cast<size_t>(n), cudaMemcpyHostToDevice), cudaSuccess);
  return static_cast<float*>(pointer);
}

float read_first(const float* device) {
  float value = 0.0f;
  EXPECT_EQ(cudaMemcpy(&value, device, sizeof value, cudaMemcpyDeviceToHost), cudaSuccess) << la3::simt::last_error_detail();
  return value;
}

class StreamOrder : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudaStreamCreateWithFlags(&a_, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&b_, cudaStreamNonBlocking), cudaSuccess);
    la3::simt::set_stream_name(a_, "alpha");
    la3::simt::set_stream_name(b_, "beta");
    ASSERT_EQ(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), cudaSuccess);
    x_ = device_floats(8, 0.0f);
  }
  void TearDown() override {
    cudaStreamSynchronize(a_);
    cudaStreamSynchronize(b_);
    EXPECT_EQ(cudaFree(x_), cudaSuccess);
    cudaEventDestroy(event_);
    cudaStreamDestroy(a_);
    cudaStreamDestroy(b_);
    cudaGetLastError();
  }
  cudaStream_t a_ = nullptr, b_ = nullptr;
  cudaEvent_t event_ = nullptr;
  float* x_ = nullptr;
};

TEST_F(StreamOrder, AKernelOnAnotherStreamMustWaitForTheLastWriter) {
  run_add_one(x_, 8, a_);
  try {
    run_add_one(x_, 8, b_);
    FAIL() << "the launch on beta should have been refused";
  } catch (const la3::simt::StreamOrderError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("kernel launch (grid 1x1x1, block 32x1x1) on stream 'beta' (op #1)"),
                                    HasSubstr("reads and writes pointer argument 0"),
                                    HasSubstr("last written by kernel launch (grid 1x1x1, block 32x1x1), pointer argument 0 "
                                              "on stream 'alpha' (op #1)"),
                                    HasSubstr("which stream 'beta' has not waited for"),
                                    HasSubstr("cudaStreamWaitEvent(stream 'beta', event)")));
  }
  // With the event wait the same launch is ordered; both increments are there.
  ASSERT_EQ(cudaEventRecord(event_, a_), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(b_, event_, 0), cudaSuccess);
  run_add_one(x_, 8, b_);
  ASSERT_EQ(cudaStreamSynchronize(b_), cudaSuccess);
  EXPECT_EQ(read_first(x_), 2.0f);
}

TEST_F(StreamOrder, AnEventRecordedBeforeTheWriteDoesNotOrderIt) {
  ASSERT_EQ(cudaEventRecord(event_, a_), cudaSuccess);
  run_add_one(x_, 8, a_);  // after the event
  ASSERT_EQ(cudaStreamWaitEvent(b_, event_, 0), cudaSuccess);
  EXPECT_THROW(run_add_one(x_, 8, b_), la3::simt::StreamOrderError);
}

TEST_F(StreamOrder, TheHostMustSynchroniseWithTheWriterBeforeReading) {
  run_add_one(x_, 8, a_);
  float value = 0.0f;
  // cudaMemcpy runs on the legacy default stream, which does not order non-blocking streams.
  EXPECT_EQ(cudaMemcpy(&value, x_, sizeof value, cudaMemcpyDeviceToHost), cudaErrorIllegalState);
  EXPECT_THAT(la3::simt::last_error_detail(),
              AllOf(HasSubstr("cudaMemcpy device to host (4 bytes) on host (legacy default stream)"),
                    HasSubstr("reads source"), HasSubstr("on stream 'alpha' (op #1)"),
                    HasSubstr("which the host has not waited for: synchronize with stream 'alpha' first")));
  EXPECT_EQ(cudaGetLastError(), cudaErrorIllegalState);
  // Synchronising the wrong stream does not help; the right one does.
  ASSERT_EQ(cudaStreamSynchronize(b_), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(&value, x_, sizeof value, cudaMemcpyDeviceToHost), cudaErrorIllegalState);
  ASSERT_EQ(cudaStreamSynchronize(a_), cudaSuccess);
  EXPECT_EQ(read_first(x_), 1.0f);
  cudaGetLastError();
}

TEST_F(StreamOrder, AStreamCopyOfTheBufferIsCheckedToo) {
  run_add_one(x_, 8, a_);
  float value = 0.0f;
  EXPECT_EQ(cudaMemcpyAsync(&value, x_, sizeof value, cudaMemcpyDeviceToHost, b_), cudaErrorIllegalState);
  EXPECT_THAT(la3::simt::last_error_detail(), HasSubstr("cudaMemcpyAsync device to host (4 bytes) on stream 'beta'"));
  EXPECT_EQ(cudaMemsetAsync(x_, 0, 4, b_), cudaErrorIllegalState);
  EXPECT_EQ(cudaMemcpyAsync(&value, x_, sizeof value, cudaMemcpyDeviceToHost, a_), cudaSuccess);  // same stream: ordered
  cudaGetLastError();
}

TEST_F(StreamOrder, ReadersOnTwoStreamsAreFineButAWriterMustWaitForBoth) {
  float* y = device_floats(8, 0.0f);
  // Two copies read x on alpha and beta (after the host wrote it: ordered by program order).
  ASSERT_EQ(cudaMemcpyAsync(y, x_, 4, cudaMemcpyDeviceToDevice, a_), cudaSuccess);
  float host_copy = 0.0f;
  ASSERT_EQ(cudaMemcpyAsync(&host_copy, x_, 4, cudaMemcpyDeviceToHost, b_), cudaSuccess);
  // A write on alpha after beta's read, without waiting for beta: write-after-read.
  EXPECT_EQ(cudaMemsetAsync(x_, 0, 4, a_), cudaErrorIllegalState);
  EXPECT_THAT(la3::simt::last_error_detail(), HasSubstr("last read by cudaMemcpyAsync device to host (4 bytes), source on "
                                                        "stream 'beta'"));
  ASSERT_EQ(cudaEventRecord(event_, b_), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(a_, event_, 0), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(x_, 0, 4, a_), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(a_), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(b_), cudaSuccess);
  EXPECT_EQ(cudaFree(y), cudaSuccess);
  cudaGetLastError();
}

TEST_F(StreamOrder, BlockingStreamsOrderWithTheLegacyDefaultStream) {
  cudaStream_t blocking = nullptr;
  ASSERT_EQ(cudaStreamCreate(&blocking), cudaSuccess);
  run_add_one(x_, 8, blocking);
  EXPECT_EQ(read_first(x_), 1.0f);  // cudaMemcpy waits for blocking streams
  cudaStreamDestroy(blocking);
}

// Asynchronous work that completes after `polls` polls once it may start, adding 10 to its
// buffer (like a collective writing its result).
class FakeCollective : public la3::simt::AsyncWork {
 public:
  FakeCollective(float* buffer, int polls) : buffer_(buffer), polls_left_(polls) {}
  bool poll(bool may_start) override {
    if (!may_start) return false;
    started_ = true;
    if (--polls_left_ > 0) return false;
    buffer_[0] += 10.0f;
    return true;
  }
  bool started() const { return started_; }

 private:
  float* buffer_;
  int polls_left_;
  bool started_ = false;
};

TEST_F(StreamOrder, AsynchronousWorkCompletesInStreamOrderAndBlocksWhatWaitsForIt) {
  run_add_one(x_, 8, a_);  // compute writes x
  ASSERT_EQ(cudaEventRecord(event_, a_), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(b_, event_, 0), cudaSuccess);
  auto work = std::make_shared<FakeCollective>(x_, 3);
  ASSERT_EQ(la3::simt::enqueue_stream_work(b_, "fake all-reduce", {{x_, la3::simt::Access::kReadWrite, "buffer"}}, work),
            "");
  cudaEvent_t done = nullptr;
  ASSERT_EQ(cudaEventCreate(&done), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(done, b_), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(done), cudaErrorNotReady);  // one poll: started, not finished
  EXPECT_TRUE(work->started());
  // Compute touching x without waiting for the collective is refused ...
  try {
    run_add_one(x_, 8, a_);
    FAIL() << "expected a stream-order error";
  } catch (const la3::simt::StreamOrderError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("on stream 'alpha' (op #2)"),
                                    HasSubstr("last written by fake all-reduce, buffer on stream 'beta' (op #1)"),
                                    HasSubstr("record an event on stream 'beta' after op #1")));
  }
  // ... and after cudaStreamWaitEvent the launch first lets the collective finish.
  ASSERT_EQ(cudaStreamWaitEvent(a_, done, 0), cudaSuccess);
  run_add_one(x_, 8, a_);
  EXPECT_EQ(cudaEventQuery(done), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(a_), cudaSuccess);
  EXPECT_EQ(read_first(x_), 12.0f);  // 1, + 10 by the collective, + 1
  cudaEventDestroy(done);
}

TEST_F(StreamOrder, WorkWaitsForEarlierAsynchronousWorkOnItsStream) {
  auto first = std::make_shared<FakeCollective>(x_, 5);
  auto second = std::make_shared<FakeCollective>(x_, 1);
  ASSERT_EQ(la3::simt::enqueue_stream_work(b_, "first", {{x_, la3::simt::Access::kReadWrite, "buffer"}}, first), "");
  ASSERT_EQ(la3::simt::enqueue_stream_work(b_, "second", {{x_, la3::simt::Access::kReadWrite, "buffer"}}, second), "");
  la3::simt::progress_async_work();
  EXPECT_TRUE(first->started());
  EXPECT_FALSE(second->started());  // not before the first completed
  EXPECT_EQ(cudaStreamQuery(b_), cudaErrorNotReady);
  ASSERT_EQ(cudaStreamSynchronize(b_), cudaSuccess);
  EXPECT_TRUE(second->started());
  EXPECT_EQ(read_first(x_), 20.0f);
}

TEST_F(StreamOrder, TheLogRecordsQueuedWorkPerStream) {
  la3::simt::clear_stream_log();
  la3::simt::set_stream_log_enabled(true);
  run_add_one(x_, 8, a_);
  run_add_one(x_, 8, a_);
  ASSERT_EQ(cudaEventRecord(event_, a_), cudaSuccess);
  ASSERT_EQ(cudaStreamWaitEvent(b_, event_, 0), cudaSuccess);
  ASSERT_EQ(la3::simt::enqueue_stream_work(b_, "fake all-reduce", {{x_, la3::simt::Access::kReadWrite, "buffer"}},
                                           std::make_shared<FakeCollective>(x_, 1)),
            "");
  run_add_one(x_, 8, b_);  // after the collective on its stream: ordered
  la3::simt::set_stream_log_enabled(false);
  const std::vector<la3::simt::StreamLogEntry> log = la3::simt::stream_log();
  ASSERT_EQ(log.size(), 5u);
  EXPECT_EQ(log[2].stream, "beta");
  EXPECT_TRUE(log[2].is_wait);
  EXPECT_EQ(log[3].what, "fake all-reduce");
  EXPECT_EQ(log[3].op, 1u);
  ASSERT_EQ(log[3].buffers.size(), 1u);
  EXPECT_EQ(log[3].buffers[0], x_);
  EXPECT_LT(log[1].sequence, log[3].sequence);
  const std::string text = la3::simt::format_stream_log(log);
  EXPECT_THAT(text, HasSubstr("stream 'alpha' op #2: kernel launch (grid 1x1x1, block 32x1x1)\n"));
  EXPECT_THAT(text, HasSubstr("stream 'beta' after op #0: cudaStreamWaitEvent: waits for stream 'alpha' after op #2"));
  EXPECT_THAT(text, HasSubstr("stream 'beta' op #1: fake all-reduce (queued after 'alpha' op #2)\n"));
  la3::simt::clear_stream_log();
  ASSERT_EQ(cudaStreamSynchronize(b_), cudaSuccess);
}

TEST(StreamOrderBackend, TheCudaEmuBackendReportsAViolationAsAnEngineError) {
  la3::register_cuda_emu_backend();
  const la3::Device emu{la3::DeviceType::kCudaEmu, 0};
  la3::Tensor t = la3::Tensor::zeros({16}, la3::DType::kF32, emu);
  EXPECT_EQ(t.to_vector<float>()[0], 0.0f);  // the host synchronises with 'compute'
  cudaStream_t other = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking), cudaSuccess);
  la3::simt::set_stream_name(other, "side");
  // Work on another stream writes the tensor; the backend's next kernel on it is refused.
  ASSERT_EQ(cudaMemsetAsync(t.raw_data(), 0, 4, other), cudaSuccess);
  try {
    t.fill(1.0);
    FAIL() << "expected an EngineError";
  } catch (const la3::EngineError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("cuda-emu kernel launch"), HasSubstr("on stream 'compute'"),
                                    HasSubstr("last written by cudaMemsetAsync (4 bytes), buffer on stream 'side'")));
  }
  ASSERT_EQ(cudaStreamSynchronize(other), cudaSuccess);
  t.fill(1.0);  // the host synchronised with 'side': ordered now
  EXPECT_EQ(t.to_vector<float>()[3], 1.0f);
  cudaStreamDestroy(other);
}

}  // namespace
