// The NCCL communicator on the cuda-emu device, and the emulated NCCL under it, under a real
// multi-process launch (mpirun -np 2 and -np 3, tests/CMakeLists.txt). Every rank runs every
// test. Values depend on every rank, so a wrong offset, count or rank order fails somewhere;
// each class of misuse the emulation exists to catch (a missing compute->comm or comm->compute
// event wait, a buffer or count past its allocation, unbalanced groups, collectives that differ
// between ranks) is made on purpose and must fail with its precise error, while the usage the
// communicator makes passes the checker.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "dist/gradient_buckets.h"
#include "dist/mpi_bootstrap.h"
#include "dist/nccl_communicator.h"
#include "dist/nccl_emu/nccl.h"
#include "dist/world.h"
#include "engine/autograd/tape.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/error.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"
#include "kernels/simt/runtime.h"

namespace la3::dist {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const Device kEmu{DeviceType::kCudaEmu, 0};

la3::cuda_emu::CudaBackend& emu() {
  register_cuda_emu_backend();
  return dynamic_cast<la3::cuda_emu::CudaBackend&>(backend_for(kEmu));
}

// cudaMalloc'd device memory of exactly n elements (no allocator rounding, so one element past
// the end is past the allocation), copied through the backend's compute stream.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) { EXPECT_EQ(cudaMalloc(&pointer_, n * sizeof(T)), cudaSuccess); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(pointer_); }
  T* get() const { return static_cast<T*>(pointer_); }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) const { emu().copy_from_host(pointer_, host.data(), host.size() * sizeof(T)); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    emu().copy_to_host(host.data(), pointer_, n_ * sizeof(T));
    return host;
  }

 private:
  size_t n_;
  void* pointer_ = nullptr;
};

// A value no two (rank, index) pairs share, exactly representable in f32.
float contribution(int rank, int64_t i) { return static_cast<float>(rank * 1000 + i % 997) + 0.25f; }

std::vector<float> contributions(int rank, int64_t count) {
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[static_cast<size_t>(i)] = contribution(rank, i);
  return values;
}

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world().mpi) << "run this binary under mpirun";
    emu().set_gemm_precision(GemmPrecision::kFp32);
    comm_ = make_nccl_communicator(emu(), 20.0);
    ASSERT_EQ(comm_->name(), "nccl");
    rank_ = comm_->rank();
    size_ = comm_->size();
  }
  std::unique_ptr<Communicator> comm_;
  int rank_ = 0, size_ = 1;
};

TEST(NcclFactory, NeedsACudaDeviceAndSaysWhichFlavoursWereBuilt) {
  try {
    make_nccl_communicator(backend_for(Device::cpu()), 1.0);
    FAIL() << "the cpu has no nccl communicator";
  } catch (const EngineError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("needs a cuda or cuda-emu device, got cpu"), HasSubstr("distributed.backend: mpi")));
  }
#if defined(LA3_EXPECT_NCCL_DEVICE_FLAVOUR)
  EXPECT_TRUE(nccl_device_flavour_built());  // nvcc compiled and linked it against the real NCCL
#endif
}

TEST_F(NcclCommunicatorTest, AllReduceSumsEveryRanksBuffer) {
  for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{100003}}) {
    DeviceArray<float> buffer(static_cast<size_t>(count));
    buffer.upload(contributions(rank_, count));
    ASSERT_TRUE(comm_->all_reduce_sum(buffer.get(), count, ElementType::kF32)->wait().ok());
    const std::vector<float> result = buffer.download();
    for (int64_t i = 0; i < count; ++i) {
      float expected = 0.0f;
      for (int r = 0; r < size_; ++r) expected += contribution(r, i);
      ASSERT_EQ(result[static_cast<size_t>(i)], expected) << "element " << i << " of " << count;
    }
  }
}

TEST_F(NcclCommunicatorTest, AllReduceOfDoublesAndIntegers) {
  DeviceArray<double> doubles(2);
  doubles.upload({0.1 * (rank_ + 1), 1e300});
  DeviceArray<int64_t> tokens(1);
  tokens.upload({(int64_t{1} << 40) + rank_});
  auto w1 = comm_->all_reduce_sum(doubles.get(), 2, ElementType::kF64);
  auto w2 = comm_->all_reduce_sum(tokens.get(), 1, ElementType::kI64);
  ASSERT_TRUE(w2->wait().ok());
  ASSERT_TRUE(w1->wait().ok());
  double expected = 0.0;
  for (int r = 0; r < size_; ++r) expected += 0.1 * (r + 1);
  EXPECT_NEAR(doubles.download()[0], expected, 1e-15);
  EXPECT_EQ(tokens.download()[0], size_ * (int64_t{1} << 40) + size_ * (size_ - 1) / 2);
}

TEST_F(NcclCommunicatorTest, ManyCollectivesInFlightCompleteInAnyWaitOrder) {
  const int kBuckets = 6;
  std::vector<std::unique_ptr<DeviceArray<float>>> buckets;
  std::vector<std::unique_ptr<Work>> work;
  for (int b = 0; b < kBuckets; ++b) {
    const size_t n = static_cast<size_t>(1000 + 333 * b);
    buckets.push_back(std::make_unique<DeviceArray<float>>(n));
    buckets.back()->upload(std::vector<float>(n, static_cast<float>(rank_ + b)));
    work.push_back(comm_->all_reduce_sum(buckets.back()->get(), static_cast<int64_t>(n), ElementType::kF32));
  }
  EXPECT_GT(nccl_emu::pending_collectives(), 0);  // queued, not waited for yet
  for (int b = kBuckets - 1; b >= 0; --b) ASSERT_TRUE(work[static_cast<size_t>(b)]->wait().ok());
  for (int b = 0; b < kBuckets; ++b) {
    const float expected = static_cast<float>(size_ * (size_ - 1) / 2 + size_ * b);
    for (float v : buckets[static_cast<size_t>(b)]->download()) ASSERT_EQ(v, expected) << "bucket " << b;
  }
}

TEST_F(NcclCommunicatorTest, BroadcastFromEveryRoot) {
  DeviceArray<double> buffer(5);
  for (int root = 0; root < size_; ++root) {
    buffer.upload(std::vector<double>(5, rank_ == root ? 3.5 + root : -1.0));
    ASSERT_TRUE(comm_->broadcast(buffer.get(), 5, ElementType::kF64, root)->wait().ok());
    for (double v : buffer.download()) EXPECT_EQ(v, 3.5 + root) << "root " << root;
  }
  const absl::Status bad = comm_->broadcast(buffer.get(), 5, ElementType::kF64, size_)->wait();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST_F(NcclCommunicatorTest, ReduceScatterGivesEachRankTheSumOfItsShard) {
  const int64_t shard = 1001;
  DeviceArray<float> send(static_cast<size_t>(shard * size_));
  send.upload(contributions(rank_, shard * size_));
  DeviceArray<float> recv(static_cast<size_t>(shard));
  ASSERT_TRUE(comm_->reduce_scatter_sum(send.get(), recv.get(), shard, ElementType::kF32)->wait().ok());
  const std::vector<float> result = recv.download();
  for (int64_t j = 0; j < shard; ++j) {
    float expected = 0.0f;
    for (int r = 0; r < size_; ++r) expected += contribution(r, rank_ * shard + j);
    ASSERT_EQ(result[static_cast<size_t>(j)], expected) << "shard element " << j;
  }
  // In place (NCCL's layout: recv = send + rank * count), as ZeRO-1 shards do.
  send.upload(contributions(rank_, shard * size_));
  ASSERT_TRUE(comm_->reduce_scatter_sum(send.get(), send.get() + rank_ * shard, shard, ElementType::kF32)->wait().ok());
  const std::vector<float> in_place = send.download();
  for (int64_t j = 0; j < shard; ++j) ASSERT_EQ(in_place[static_cast<size_t>(rank_ * shard + j)], result[static_cast<size_t>(j)]);
}

TEST_F(NcclCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  const int64_t count = 513;
  DeviceArray<float> send(static_cast<size_t>(count));
  send.upload(contributions(rank_, count));
  DeviceArray<float> recv(static_cast<size_t>(count * size_));
  ASSERT_TRUE(comm_->all_gather(send.get(), recv.get(), count, ElementType::kF32)->wait().ok());
  std::vector<float> result = recv.download();
  for (int r = 0; r < size_; ++r) {
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(result[static_cast<size_t>(r * count + i)], contribution(r, i));
  }
  // In place: each rank's shard already sits at its offset.
  std::vector<float> mine(static_cast<size_t>(count * size_), -1.0f);
  for (int64_t i = 0; i < count; ++i) mine[static_cast<size_t>(rank_ * count + i)] = contribution(rank_, i);
  recv.upload(mine);
  ASSERT_TRUE(comm_->all_gather(recv.get() + rank_ * count, recv.get(), count, ElementType::kF32)->wait().ok());
  EXPECT_EQ(recv.download(), result);
}

TEST_F(NcclCommunicatorTest, GroupedCollectivesAreQueuedTogetherAndAllComplete) {
  DeviceArray<float> a(100), gathered(static_cast<size_t>(10 * size_)), shard(10);
  DeviceArray<double> b(3);
  a.upload(std::vector<float>(100, 1.0f));
  b.upload(std::vector<double>(3, rank_ == 0 ? 42.0 : 0.0));
  shard.upload(std::vector<float>(10, 1.0f));
  // Compute writes two of them right before the group (no host synchronisation after).
  emu().scale(100, DType::kF32, static_cast<float>(rank_ + 1), a.get(), a.get());
  emu().scale(10, DType::kF32, static_cast<float>(rank_), shard.get(), shard.get());
  std::vector<std::unique_ptr<Work>> work;
  simt::clear_stream_log();
  simt::set_stream_log_enabled(true);
  ASSERT_TRUE(issue_grouped(*comm_, [&] {
                work.push_back(comm_->all_reduce_sum(a.get(), 100, ElementType::kF32));
                work.push_back(comm_->broadcast(b.get(), 3, ElementType::kF64, 0));
                work.push_back(comm_->all_gather(shard.get(), gathered.get(), 10, ElementType::kF32));
              }).ok());
  simt::set_stream_log_enabled(false);
  for (auto& w : work) ASSERT_TRUE(w->wait().ok());
  EXPECT_EQ(a.download()[99], static_cast<float>(size_ * (size_ + 1) / 2));
  EXPECT_EQ(b.download()[2], 42.0);
  const std::vector<float> g = gathered.download();
  for (int r = 0; r < size_; ++r) EXPECT_EQ(g[static_cast<size_t>(r * 10 + 9)], static_cast<float>(r));
  // One wait for the compute stream, then the three collectives back to back on the stream.
  const std::string log = simt::format_stream_log(simt::stream_log());
  EXPECT_THAT(log, HasSubstr("stream 'nccl comm' after op #"));
  EXPECT_THAT(log, HasSubstr("ncclAllReduce #"));
  EXPECT_THAT(log, HasSubstr("1 of a group of 3"));
  EXPECT_THAT(log, HasSubstr("3 of a group of 3"));
  simt::clear_stream_log();
}

TEST_F(NcclCommunicatorTest, BarrierAndKernelsAfterAWaitSeeTheReducedData) {
  ASSERT_TRUE(comm_->barrier().ok());
  DeviceArray<float> buffer(64);
  buffer.upload(std::vector<float>(64, 1.0f));
  emu().scale(64, DType::kF32, static_cast<float>(rank_ + 1), buffer.get(), buffer.get());  // compute writes, no sync
  ASSERT_TRUE(comm_->all_reduce_sum(buffer.get(), 64, ElementType::kF32)->wait().ok());
  emu().scale(64, DType::kF32, 2.0f, buffer.get(), buffer.get());  // ordered after the all-reduce by wait()
  EXPECT_EQ(buffer.download()[63], static_cast<float>(size_ * (size_ + 1)));
  ASSERT_TRUE(comm_->barrier().ok());
}

TEST_F(NcclCommunicatorTest, ABufferPastItsAllocationIsRefusedAtTheCall) {
  DeviceArray<float> buffer(16);
  buffer.upload(std::vector<float>(16, 1.0f));
  const absl::Status status = comm_->all_reduce_sum(buffer.get(), 17, ElementType::kF32)->wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("rank " + std::to_string(rank_) + ": all_reduce_sum of 17 f32: invalid argument"),
                    HasSubstr("sendbuff"), HasSubstr("+ 68 bytes runs past the end of its allocation"),
                    HasSubstr("(64 bytes) by 4 bytes (17 x ncclFloat32)")));
  // The communicator is still usable (nothing was queued on any rank).
  ASSERT_TRUE(comm_->all_reduce_sum(buffer.get(), 16, ElementType::kF32)->wait().ok());
  EXPECT_EQ(buffer.download()[15], static_cast<float>(size_));
}

TEST_F(NcclCommunicatorTest, CollectivesThatDifferBetweenRanksFailOnEveryRankAndAbort) {
  DeviceArray<float> buffer(32);
  buffer.upload(std::vector<float>(32, 1.0f));
  const int64_t count = rank_ == 0 ? 10 : 11;  // a bug in the caller: counts differ
  const absl::Status status = comm_->all_reduce_sum(buffer.get(), count, ElementType::kF32)->wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  const std::string other = rank_ == 0 ? "rank 1's ncclAllReduce #0 of 11" : "rank 0's ncclAllReduce #0 of 10";
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("all_reduce_sum of " + std::to_string(count) + " f32: NCCL failed: invalid usage"),
                    HasSubstr("ncclAllReduce #0 of " + std::to_string(count) + " x ncclFloat32, sum does not match " + other),
                    HasSubstr("same count, datatype, op and root")));
  // Aborted: every later call fails at once, naming why.
  const absl::Status later = comm_->all_reduce_sum(buffer.get(), 4, ElementType::kF32)->wait();
  EXPECT_EQ(later.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(later.message()), HasSubstr("was aborted earlier"));
}

TEST_F(NcclCommunicatorTest, ALateRankMakesTheWaitTimeOutAndTheOthersLearnOfTheAbort) {
  auto impatient = make_nccl_communicator(emu(), 0.3);
  auto control = make_world_communicator(20.0);
  DeviceArray<double> value(1);
  value.upload({1.0});
  if (rank_ == size_ - 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the straggler
    // The others gave up and aborted: this rank learns it (ncclRemoteError), it does not hang.
    const absl::Status status = impatient->all_reduce_sum(value.get(), 1, ElementType::kF64)->wait();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(std::string(status.message()),
                AllOf(HasSubstr("all_reduce_sum of 1 f64: NCCL failed: remote process exited"),
                      HasSubstr("aborted the communicator (ncclCommAbort)")));
  } else {
    const absl::Status status = impatient->all_reduce_sum(value.get(), 1, ElementType::kF64)->wait();
    // With 3 ranks, the first punctual rank to time out aborts, and another may hear of that
    // before its own deadline (then it reports the abort).
    if (size_ > 2 && status.code() == absl::StatusCode::kUnavailable) {
      EXPECT_THAT(std::string(status.message()), HasSubstr("aborted the communicator (ncclCommAbort)"));
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
      EXPECT_THAT(std::string(status.message()),
                  AllOf(HasSubstr("rank " + std::to_string(rank_) + ": all_reduce_sum of 1 f64 did not complete within 0.3 s"),
                        HasSubstr("distributed.timeout_s"), HasSubstr("aborted")));
    }
    const absl::Status later = impatient->barrier();
    EXPECT_EQ(later.code(), absl::StatusCode::kFailedPrecondition) << later;
  }
  // Compute goes on after the abort: the device buffer is usable again.
  EXPECT_EQ(value.download()[0], 1.0);
  ASSERT_TRUE(control->barrier().ok());
  impatient.reset();
  ASSERT_TRUE(comm_->barrier().ok());  // the healthy communicator is unaffected
}

TEST_F(NcclCommunicatorTest, DestroyingTheCommunicatorFinishesWhatWasQueued) {
  DeviceArray<float> buffer(8);
  buffer.upload(std::vector<float>(8, 2.0f));
  auto work = comm_->all_reduce_sum(buffer.get(), 8, ElementType::kF32);
  comm_.reset();  // never waited for
  EXPECT_EQ(buffer.download()[7], 2.0f * static_cast<float>(size_));
  const absl::Status status = work->wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("destroyed"));
}

// Gradient buckets on cuda-emu over NCCL: the all-reduce of the first bucket is queued on the
// communication stream while backward is still launching the kernels of earlier layers, and
// the reduced gradients are right.
TEST_F(NcclCommunicatorTest, ABucketsAllReduceIsQueuedWhileBackwardKernelsAreStillLaunched) {
  struct Chain {
    Tensor x, w1, w2, w3;
    Chain(float scale) {
      x = Tensor::from_vector<float>({2, 4}, {scale * 1, scale * 2, scale * 3, scale * 4, -scale, scale * 0.5f,
                                              scale * 2, -scale * 3},
                                     kEmu);
      w1 = Tensor::from_vector<float>({4, 4}, std::vector<float>(16, 0.25f), kEmu);
      w2 = Tensor::from_vector<float>({3, 4}, {1, -1, 2, 0, 0.5f, 1, -2, 1, 3, 0, 1, -1}, kEmu);
      w3 = Tensor::from_vector<float>({1, 3}, {1, 2, -1}, kEmu);
      for (const Tensor* w : {&w1, &w2, &w3}) w->set_requires_grad(true);
    }
    std::vector<Tensor> parameters() const { return {w1, w2, w3}; }
    Tensor loss() const {
      const Tensor y = ops::linear(ops::linear(ops::linear(x, w1), w2), w3);
      return ops::linear(ops::reshape(y, {1, 2}), Tensor::full({1, 2}, 1.0, DType::kF32, kEmu));
    }
  };
  // Reference: the sum over ranks of the gradients is that of x scaled by sum(r + 1).
  Chain reference(static_cast<float>(size_ * (size_ + 1) / 2));
  {
    Tape tape;
    tape.backward(reference.loss());
  }
  Chain chain(static_cast<float>(rank_ + 1));
  std::vector<Tensor> order;
  {
    Tape probe;
    chain.loss();
    order = probe.leaves_in_ready_order();
    probe.clear();
  }
  GradientBuckets buckets(order, chain.parameters(), 16 * 4, *comm_);  // [w3 + w2], [w1]
  ASSERT_EQ(buckets.bucket_count(), 2);
  buckets.zero();
  simt::clear_stream_log();
  simt::set_stream_log_enabled(true);
  {
    Tape tape;
    tape.backward(chain.loss(), Tensor(), buckets.ready_hook());
  }
  ASSERT_TRUE(buckets.finish().ok());
  simt::set_stream_log_enabled(false);
  ASSERT_EQ(buckets.launch_order(), (std::vector<int>{0, 1}));
  EXPECT_TRUE(buckets.launched_during_backward()[0]);
  const std::vector<simt::StreamLogEntry> log = simt::stream_log();
  const void* bucket0 = buckets.bucket_buffer(0).raw_data();
  size_t all_reduce = log.size();
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].stream == "nccl comm" && log[i].what.rfind("ncclAllReduce", 0) == 0 && !log[i].buffers.empty() &&
        log[i].buffers[0] == bucket0) {
      all_reduce = i;
      break;
    }
  }
  ASSERT_LT(all_reduce, log.size()) << simt::format_stream_log(log);
  // Backward kernels (the GEMMs of w1's gradient) are queued on 'compute' after it.
  int later_compute = 0;
  for (size_t i = all_reduce + 1; i < log.size(); ++i) later_compute += log[i].stream == "compute" && !log[i].is_wait;
  EXPECT_GE(later_compute, 1) << simt::format_stream_log(log);
  simt::clear_stream_log();
  for (size_t p = 0; p < 3; ++p) {
    const std::vector<float> got = chain.parameters()[p].grad().to_vector<float>();
    const std::vector<float> want = reference.parameters()[p].grad().to_vector<float>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * (1.0 + std::abs(want[i]))) << p << " " << i;
  }
}

// ---- The emulated NCCL directly: each class of misuse, and the correct sequence ----

class EmulatedNccl : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world().mpi) << "run this binary under mpirun";
    rank_ = world().rank;
    size_ = world().size;
    ncclUniqueId id;
    if (rank_ == 0) {
      ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
    }
    ASSERT_TRUE(broadcast_bytes(&id, sizeof id, 0).ok());
    ASSERT_EQ(ncclCommInitRank(&comm_, size_, id, rank_), ncclSuccess) << ncclGetLastError(nullptr);
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
    simt::set_stream_name(stream_, "test comm");
    compute_ = emu().stream();
    ASSERT_EQ(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), cudaSuccess);
    ASSERT_EQ(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), cudaSuccess);
  }
  void TearDown() override {
    if (comm_ != nullptr) {
      EXPECT_EQ(ncclCommDestroy(comm_), ncclSuccess) << ncclGetLastError(nullptr);
    }
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
    cudaGetLastError();
  }
  // What NcclCommunicator does around a collective.
  void comm_waits_for_compute() {
    ASSERT_EQ(cudaEventRecord(ready_, compute_), cudaSuccess);
    ASSERT_EQ(cudaStreamWaitEvent(stream_, ready_, 0), cudaSuccess);
  }
  void compute_waits_for_comm() {
    ASSERT_EQ(cudaEventRecord(done_, stream_), cudaSuccess) << simt::last_error_detail();
    ASSERT_EQ(cudaStreamWaitEvent(compute_, done_, 0), cudaSuccess);
  }
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, compute_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  int rank_ = 0, size_ = 1;
};

// Polls the communicator's asynchronous error (which drives the emulation) for up to 10 s.
ncclResult_t wait_for_async_error(ncclComm_t comm) {
  ncclResult_t async = ncclSuccess;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (async == ncclSuccess && std::chrono::steady_clock::now() < deadline) {
    if (ncclCommGetAsyncError(comm, &async) != ncclSuccess) return ncclInternalError;
    std::this_thread::yield();
  }
  return async;
}

TEST_F(EmulatedNccl, TheCorrectSequencePassesTheChecker) {
  DeviceArray<float> x(16);
  x.upload(std::vector<float>(16, 1.0f));
  emu().scale(16, DType::kF32, static_cast<float>(rank_ + 1), x.get(), x.get());  // compute writes x
  comm_waits_for_compute();
  ASSERT_EQ(ncclAllReduce(x.get(), x.get(), 16, ncclFloat32, ncclSum, comm_, stream_), ncclSuccess)
      << ncclGetLastError(comm_);
  compute_waits_for_comm();
  emu().scale(16, DType::kF32, 2.0f, x.get(), x.get());  // reads the reduced x
  EXPECT_EQ(x.download()[0], static_cast<float>(size_ * (size_ + 1)));
}

TEST_F(EmulatedNccl, SkippingTheComputeToCommWaitIsAnError) {
  DeviceArray<float> x(16);
  x.upload(std::vector<float>(16, 1.0f));
  emu().scale(16, DType::kF32, 3.0f, x.get(), x.get());  // compute writes x, the comm stream does not wait
  EXPECT_EQ(ncclAllReduce(x.get(), x.get(), 16, ncclFloat32, ncclSum, comm_, stream_), ncclInvalidUsage);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)),
              AllOf(HasSubstr("rank " + std::to_string(rank_) + ": ncclAllReduce #0 of 16 x ncclFloat32, sum on stream "
                                                                "'test comm' (op #1) reads and writes sendbuff and recvbuff"),
                    HasSubstr(", 64 bytes), last written by kernel launch"), HasSubstr("on stream 'compute'"),
                    HasSubstr("which stream 'test comm' has not waited for: record an event on stream 'compute'"),
                    HasSubstr("cudaStreamWaitEvent(stream 'test comm', event) before this work")));
  // Nothing was queued: the correct sequence still works.
  comm_waits_for_compute();
  ASSERT_EQ(ncclAllReduce(x.get(), x.get(), 16, ncclFloat32, ncclSum, comm_, stream_), ncclSuccess);
  compute_waits_for_comm();
  EXPECT_EQ(x.download()[0], 3.0f * static_cast<float>(size_));
}

TEST_F(EmulatedNccl, ReadingTheResultWithoutTheCommToComputeWaitIsAnError) {
  DeviceArray<float> x(16);
  x.upload(std::vector<float>(16, 1.0f));
  comm_waits_for_compute();
  ASSERT_EQ(ncclAllReduce(x.get(), x.get(), 16, ncclFloat32, ncclSum, comm_, stream_), ncclSuccess);
  // A kernel on the compute stream reading x before waiting for the collective.
  try {
    emu().scale(16, DType::kF32, 2.0f, x.get(), x.get());
    FAIL() << "the kernel should have been refused";
  } catch (const EngineError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("cuda-emu kernel launch"), HasSubstr("on stream 'compute'"),
                                    HasSubstr("last written by ncclAllReduce #0 of 16 x ncclFloat32, sum, sendbuff and "
                                              "recvbuff on stream 'test comm' (op #1)"),
                                    HasSubstr("which stream 'compute' has not waited for: record an event on stream "
                                              "'test comm' after op #1")));
  }
  // The host reading it (a copy on the legacy stream) before synchronising with the comm stream.
  float value = 0.0f;
  EXPECT_EQ(cudaMemcpy(&value, x.get(), sizeof value, cudaMemcpyDeviceToHost), cudaErrorIllegalState);
  EXPECT_THAT(simt::last_error_detail(), HasSubstr("which the host has not waited for: synchronize with stream 'test comm'"));
  cudaGetLastError();
  // Through the backend (a copy on the compute stream): an EngineError naming the collective.
  try {
    x.download();
    FAIL() << "the copy should have been refused";
  } catch (const EngineError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("cudaErrorIllegalState"), HasSubstr("last written by ncclAllReduce #0")));
  }
  compute_waits_for_comm();
  EXPECT_EQ(x.download()[0], static_cast<float>(size_));
}

TEST_F(EmulatedNccl, ABufferOrCountPastItsAllocationIsRefused) {
  DeviceArray<float> x(16);
  comm_waits_for_compute();
  EXPECT_EQ(ncclAllReduce(x.get(), x.get(), 17, ncclFloat32, ncclSum, comm_, stream_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)),
              AllOf(HasSubstr("ncclAllReduce (rank " + std::to_string(rank_) + "): sendbuff"),
                    HasSubstr("+ 68 bytes runs past the end of its allocation"), HasSubstr("by 4 bytes (17 x ncclFloat32)")));
  // An offset pointer: the last rank's shard of a reduce-scatter one element too far.
  DeviceArray<float> send(static_cast<size_t>(4 * size_));
  EXPECT_EQ(ncclReduceScatter(send.get(), x.get() + 13, 4, ncclFloat32, ncclSum, comm_, stream_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)), AllOf(HasSubstr("recvbuff"), HasSubstr("by 4 bytes (4 x ncclFloat32)")));
  // All-gather: recvbuff holds nranks * sendcount elements, not sendcount.
  DeviceArray<float> small(4);
  EXPECT_EQ(ncclAllGather(send.get(), small.get(), 4, ncclFloat32, comm_, stream_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)),
              HasSubstr("by " + std::to_string(16 * (size_ - 1)) + " bytes (4 x ncclFloat32)"));
  // A host pointer is not device memory; a partial overlap is not NCCL's in-place layout.
  std::vector<float> host(16);
  EXPECT_EQ(ncclAllReduce(host.data(), x.get(), 16, ncclFloat32, ncclSum, comm_, stream_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)), HasSubstr("is not device memory"));
  EXPECT_EQ(ncclAllReduce(x.get(), x.get() + 1, 8, ncclFloat32, ncclSum, comm_, stream_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)), HasSubstr("overlap without NCCL's in-place layout"));
  EXPECT_EQ(nccl_emu::pending_collectives(), 0);
}

TEST_F(EmulatedNccl, UnbalancedGroupsAreErrors) {
  EXPECT_EQ(ncclGroupEnd(), ncclInvalidUsage);
  EXPECT_STREQ(ncclGetLastError(nullptr), "ncclGroupEnd without a matching ncclGroupStart");
  DeviceArray<float> x(16);
  x.upload(std::vector<float>(16, 1.0f));
  comm_waits_for_compute();
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  ASSERT_EQ(ncclAllReduce(x.get(), x.get(), 16, ncclFloat32, ncclSum, comm_, stream_), ncclSuccess);
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);  // depth 1: the collective is still held
  EXPECT_EQ(nccl_emu::pending_collectives(), 0);
  // An event recorded now would not follow the collective.
  EXPECT_EQ(cudaEventRecord(done_, stream_), cudaErrorIllegalState);
  EXPECT_THAT(simt::last_error_detail(),
              AllOf(HasSubstr("cudaEventRecord on stream 'test comm' while ncclAllReduce of 16 x ncclFloat32, sum"),
                    HasSubstr("inside ncclGroupStart (depth 1) is not queued yet"),
                    HasSubstr("a missing or unbalanced ncclGroupEnd")));
  EXPECT_EQ(cudaStreamSynchronize(stream_), cudaErrorIllegalState);
  EXPECT_EQ(ncclCommDestroy(comm_), ncclInvalidUsage);
  cudaGetLastError();
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);  // balanced now: queued
  compute_waits_for_comm();
  EXPECT_EQ(x.download()[0], static_cast<float>(size_));
}

TEST_F(EmulatedNccl, CollectivesThatDifferBetweenRanksFailOnEveryRank) {
  DeviceArray<float> x(64);
  x.upload(std::vector<float>(64, 1.0f));
  comm_waits_for_compute();
  // Rank 0 reduces 10 elements, the others 11; then the last rank broadcasts where the others reduce.
  ASSERT_EQ(ncclAllReduce(x.get(), x.get(), rank_ == 0 ? 10 : 11, ncclFloat32, ncclSum, comm_, stream_), ncclSuccess);
  EXPECT_EQ(wait_for_async_error(comm_), ncclInvalidUsage);
  const std::string mine = rank_ == 0 ? "of 10" : "of 11";
  const std::string theirs = rank_ == 0 ? "rank 1's ncclAllReduce #0 of 11" : "rank 0's ncclAllReduce #0 of 10";
  EXPECT_THAT(std::string(ncclGetLastError(comm_)),
              AllOf(HasSubstr("rank " + std::to_string(rank_) + ": ncclAllReduce #0 " + mine + " x ncclFloat32, sum"),
                    HasSubstr("does not match " + theirs), HasSubstr("a real NCCL would hang or corrupt memory")));
  // The failed collective no longer holds the stream; the communicator refuses new work.
  compute_waits_for_comm();
  EXPECT_EQ(x.download()[0], 1.0f);
  EXPECT_EQ(ncclAllReduce(x.get(), x.get(), 4, ncclFloat32, ncclSum, comm_, stream_), ncclInvalidUsage);
  EXPECT_EQ(nccl_emu::pending_collectives(), 0);
}

TEST_F(EmulatedNccl, KindsAndRootsMustAgreeToo) {
  DeviceArray<float> x(static_cast<size_t>(8 * size_));
  x.upload(std::vector<float>(static_cast<size_t>(8 * size_), 1.0f));
  comm_waits_for_compute();
  if (rank_ == size_ - 1) {
    ASSERT_EQ(ncclBroadcast(x.get(), x.get(), 8, ncclFloat32, 0, comm_, stream_), ncclSuccess);
  } else {
    ASSERT_EQ(ncclAllReduce(x.get(), x.get(), 8, ncclFloat32, ncclSum, comm_, stream_), ncclSuccess);
  }
  EXPECT_EQ(wait_for_async_error(comm_), ncclInvalidUsage);
  EXPECT_THAT(std::string(ncclGetLastError(comm_)), HasSubstr("ncclBroadcast #0 of 8 x ncclFloat32, root 0"));
}

TEST_F(EmulatedNccl, RanksMustShareTheUniqueId) {
  ncclUniqueId own;  // each rank its own id: a missing broadcast
  ASSERT_EQ(ncclGetUniqueId(&own), ncclSuccess);
  ncclComm_t other = nullptr;
  EXPECT_EQ(ncclCommInitRank(&other, size_, own, rank_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(nullptr)), HasSubstr("passed a different unique id"));
  EXPECT_EQ(other, nullptr);
  ncclUniqueId zeros{};
  EXPECT_EQ(ncclCommInitRank(&other, size_, zeros, rank_), ncclInvalidArgument);
  EXPECT_THAT(std::string(ncclGetLastError(nullptr)), HasSubstr("not made by ncclGetUniqueId"));
}

}  // namespace
}  // namespace la3::dist

// main(): tests/support/mpi_test_main.cc
