// The NCCL communicator (see nccl_communicator.h). One source: nvcc compiles it against the
// real <nccl.h> into la3::dist::cuda_device (through a generated .cu wrapper, dist/CMakeLists.txt),
// g++ against dist/nccl_emu/nccl.h into la3::dist::cuda_emu.
#include "dist/nccl_communicator.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dist/mpi_bootstrap.h"
#include "dist/world.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"

#if defined(__CUDACC__)
#include <nccl.h>
#else
#include "dist/nccl_emu/nccl.h"
#endif

namespace la3::dist::LA3_CUDA_FLAVOUR {

namespace {

ncclDataType_t nccl_type(ElementType type) {
  switch (type) {
    case ElementType::kF32: return ncclFloat32;
    case ElementType::kF64: return ncclFloat64;
    case ElementType::kI64: return ncclInt64;
  }
  return ncclFloat32;
}

std::string describe(const char* op, int64_t count, ElementType type) {
  return absl::StrCat(op, " of ", count, " ", element_type_name(type));
}

// A CUDA error in words (under the emulation with the stream-order checker's message); clears it.
std::string cuda_text(cudaError_t status) {
  std::string text = absl::StrCat(cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
#if !defined(__CUDACC__)
  if (const std::string detail = simt::last_error_detail(); !detail.empty()) absl::StrAppend(&text, ": ", detail);
#endif
  cudaGetLastError();
  return text;
}

// An NCCL result in words, with the communicator's last error message when there is one.
std::string nccl_text(ncclResult_t result, ncclComm_t comm) {
  std::string text = ncclGetErrorString(result);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') absl::StrAppend(&text, ": ", last);
  return text;
}

absl::StatusCode code_of(ncclResult_t result) {
  switch (result) {
    case ncclInvalidArgument: return absl::StatusCode::kInvalidArgument;
    case ncclInvalidUsage: return absl::StatusCode::kFailedPrecondition;
    case ncclRemoteError: return absl::StatusCode::kUnavailable;
    default: return absl::StatusCode::kInternal;
  }
}

// nvcc's front end warns that the Status& returned by absl::Status's assignment is discarded
// (the class is [[nodiscard]]); statuses are assigned through this.
void assign(absl::Status& target, absl::Status value) { static_cast<void>(target = std::move(value)); }

// One collective in flight: `done` is recorded on the communication stream right after it
// (or after the ncclGroupEnd that queued it).
struct Pending {
  std::string what;
  cudaEvent_t done = nullptr;
  bool recorded = false;
  bool finished = false;
  absl::Status status;
  ~Pending() {
    if (done != nullptr) cudaEventDestroy(done);
  }
};

// What the communicator and its Work handles share (a Work may be waited for after an abort,
// or even after the communicator is gone: it then reports that).
struct State {
  ncclComm_t comm = nullptr;
  cudaStream_t compute = nullptr;      // the backend's stream
  cudaStream_t comm_stream = nullptr;  // ours
  cudaEvent_t ready = nullptr;         // recorded on `compute` before each collective
  void* scratch = nullptr;             // one element for barrier()
  int rank = 0, size = 1;
  double timeout_seconds = 0.0;
  bool aborted = false;
  bool destroyed = false;
  std::string abort_reason;
  bool grouping = false;
  absl::Status group_status;
  std::vector<std::shared_ptr<Pending>> grouped;  // issued in the open group

  absl::Status fail(absl::StatusCode code, const std::string& what, const std::string& why) const {
    return absl::Status(code, absl::StrCat("rank ", rank, ": ", what, ": ", why));
  }

  // NCCL cannot be trusted after an asynchronous error or a timeout: abort, so that the
  // device side stops and every later call fails fast.
  void abort(const std::string& reason) {
    if (aborted || comm == nullptr) return;
    aborted = true;
    abort_reason = reason;
    ncclCommAbort(comm);
    comm = nullptr;
  }

  // Makes the communication stream wait for everything queued on the compute stream so far.
  absl::Status order_after_compute(const std::string& what) {
    cudaError_t status = cudaEventRecord(ready, compute);
    if (status == cudaSuccess) status = cudaStreamWaitEvent(comm_stream, ready, 0);
    if (status != cudaSuccess) return fail(absl::StatusCode::kInternal, what, "ordering after the compute stream: " + cuda_text(status));
    return absl::OkStatus();
  }

  absl::Status record_done(Pending& pending) {
    const cudaError_t status = cudaEventRecord(pending.done, comm_stream);
    if (status != cudaSuccess) return fail(absl::StatusCode::kInternal, pending.what, "cudaEventRecord: " + cuda_text(status));
    pending.recorded = true;
    return absl::OkStatus();
  }

  // Polls `done` and the communicator's asynchronous error until the collective completed,
  // failed or the timeout passed (then aborts).
  absl::Status poll_until_done(const Pending& pending) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
    const auto async_failure = [&]() -> absl::Status {
      ncclResult_t async = ncclSuccess;
      if (const ncclResult_t result = ncclCommGetAsyncError(comm, &async); result != ncclSuccess) async = result;
      if (async == ncclSuccess || async == ncclInProgress) return absl::OkStatus();
      const absl::Status status = fail(code_of(async), pending.what, "NCCL failed: " + nccl_text(async, comm));
      abort(std::string(status.message()));
      return status;
    };
    for (int polls = 0;; ++polls) {
      if (absl::Status failed = async_failure(); !failed.ok()) return failed;
      const cudaError_t query = cudaEventQuery(pending.done);
      // A collective that failed also leaves the stream (NCCL's kernels stop): the event
      // completing is not enough, the error is checked again.
      if (query == cudaSuccess) return async_failure();
      if (query != cudaErrorNotReady) {
        const absl::Status status = fail(absl::StatusCode::kInternal, pending.what, "cudaEventQuery: " + cuda_text(query));
        abort(std::string(status.message()));
        return status;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        const absl::Status status = absl::DeadlineExceededError(absl::StrCat(
            "rank ", rank, ": ", pending.what, " did not complete within ", timeout_seconds,
            " s (distributed.timeout_s): another rank is stuck or has died; the nccl communicator was aborted"));
        abort(std::string(status.message()));
        return status;
      }
      // Spin briefly (a collective often finishes within microseconds), then leave the core
      // to the ranks and threads that have work.
      if (polls < 200) {
        std::this_thread::yield();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }

  absl::Status wait(Pending& pending) {
    if (pending.finished) return pending.status;
    if (destroyed) return fail(absl::StatusCode::kFailedPrecondition, pending.what, "the nccl communicator was destroyed");
    if (aborted) {
      return fail(absl::StatusCode::kFailedPrecondition, pending.what,
                  "the nccl communicator was aborted earlier (" + abort_reason + ")");
    }
    if (!pending.recorded) {
      return fail(absl::StatusCode::kFailedPrecondition, pending.what,
                  "waited for inside an open group: end the group (end_group / issue_grouped) first");
    }
    pending.finished = true;
    // Kernels queued on the compute stream from now on see the collective's result: the
    // dependency lives on the device, the host does not have to block for it.
    if (const cudaError_t status = cudaStreamWaitEvent(compute, pending.done, 0); status != cudaSuccess) {
      assign(pending.status, fail(absl::StatusCode::kInternal, pending.what, "cudaStreamWaitEvent: " + cuda_text(status)));
      return pending.status;
    }
    // The host waits too, but only to bound the time: a rank that never joins must become
    // an error (DeadlineExceeded), not a hang of the next kernel.
    assign(pending.status, poll_until_done(pending));
    return pending.status;
  }
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<State> state, std::shared_ptr<Pending> pending)
      : state_(std::move(state)), pending_(std::move(pending)) {}
  absl::Status wait() override { return state_->wait(*pending_); }

 private:
  std::shared_ptr<State> state_;
  std::shared_ptr<Pending> pending_;
};

class NcclCommunicator final : public GroupingCommunicator {
 public:
  NcclCommunicator(la3::LA3_CUDA_FLAVOUR::CudaBackend& backend, double timeout_seconds) : state_(std::make_shared<State>()) {
    const World& w = world();
    if (!w.mpi) {
      Fail(ErrorKind::kInvalidArgument,
           "the nccl communicator needs a distributed world (launch with mpirun or srun; dist/world.h)");
    }
    State& s = *state_;
    s.rank = w.rank;
    s.size = w.size;
    s.compute = backend.stream();
    s.timeout_seconds = timeout_seconds;
    LA3_CUDA_CHECK(cudaSetDevice(backend.device().index));
    // Rank 0 makes the id; every rank learns whether that worked, so none is left waiting.
    struct {
      int ok = 0;
      ncclUniqueId id;
    } hello{};
    std::string why;
    if (s.rank == 0) {
      const ncclResult_t result = ncclGetUniqueId(&hello.id);
      hello.ok = result == ncclSuccess ? 1 : 0;
      if (result != ncclSuccess) why = nccl_text(result, nullptr);
    }
    if (const absl::Status sent = broadcast_bytes(&hello, sizeof hello, 0); !sent.ok()) {
      Fail(ErrorKind::kInternal, "rank ", s.rank, ": broadcasting the NCCL unique id: ", sent.message());
    }
    if (!hello.ok) {
      Fail(ErrorKind::kInternal, "rank ", s.rank, ": ncclGetUniqueId failed on rank 0", why.empty() ? "" : ": ", why);
    }
    if (const ncclResult_t result = ncclCommInitRank(&s.comm, s.size, hello.id, s.rank); result != ncclSuccess) {
      s.comm = nullptr;
      Fail(ErrorKind::kInternal, "rank ", s.rank, ": ncclCommInitRank (", s.size, " ranks) failed: ", nccl_text(result, nullptr));
    }
    LA3_CUDA_CHECK(cudaStreamCreateWithFlags(&s.comm_stream, cudaStreamNonBlocking));
#if !defined(__CUDACC__)
    simt::set_stream_name(s.comm_stream, "nccl comm");  // in the stream-order checker's messages and log
#endif
    LA3_CUDA_CHECK(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming));
    LA3_CUDA_CHECK(cudaMalloc(&s.scratch, sizeof(double)));
    LA3_CUDA_CHECK(cudaMemsetAsync(s.scratch, 0, sizeof(double), s.comm_stream));
  }

  ~NcclCommunicator() override {
    State& s = *state_;
    if (s.grouping) end_group().IgnoreError();
    if (s.comm != nullptr) {
      // Let what was queued finish (bounded by the timeout), then destroy; abort otherwise.
      Pending last;
      last.what = "finishing the queued collectives";
      bool clean = cudaEventCreateWithFlags(&last.done, cudaEventDisableTiming) == cudaSuccess && s.record_done(last).ok() &&
                   s.poll_until_done(last).ok();
      if (s.comm != nullptr) {
        if (clean) {
          ncclCommDestroy(s.comm);
        } else {
          s.abort("destroyed with collectives that did not complete");
        }
      }
      s.comm = nullptr;
    }
    s.destroyed = true;
    if (s.ready != nullptr) cudaEventDestroy(s.ready);
    if (s.scratch != nullptr) cudaFree(s.scratch);
    if (s.comm_stream != nullptr) cudaStreamDestroy(s.comm_stream);
    cudaGetLastError();
  }

  int rank() const override { return state_->rank; }
  int size() const override { return state_->size; }
  std::string name() const override { return "nccl"; }

  std::unique_ptr<Work> all_reduce_sum(void* buffer, int64_t count, ElementType type) override {
    return issue(describe("all_reduce_sum", count, type), count, [=, this] {
      return ncclAllReduce(buffer, buffer, static_cast<size_t>(count), nccl_type(type), ncclSum, state_->comm,
                           state_->comm_stream);
    });
  }

  std::unique_ptr<Work> broadcast(void* buffer, int64_t count, ElementType type, int root) override {
    const std::string what = absl::StrCat(describe("broadcast", count, type), " from rank ", root);
    if (root < 0 || root >= state_->size) {
      return completed_work(state_->fail(absl::StatusCode::kInvalidArgument, what,
                                         absl::StrCat("root ", root, " is not a rank of ", state_->size)));
    }
    return issue(what, count, [=, this] {
      return ncclBroadcast(buffer, buffer, static_cast<size_t>(count), nccl_type(type), root, state_->comm,
                           state_->comm_stream);
    });
  }

  std::unique_ptr<Work> reduce_scatter_sum(const void* send, void* recv, int64_t recv_count, ElementType type) override {
    return issue(describe("reduce_scatter_sum", recv_count, type), recv_count, [=, this] {
      return ncclReduceScatter(send, recv, static_cast<size_t>(recv_count), nccl_type(type), ncclSum, state_->comm,
                               state_->comm_stream);
    });
  }

  std::unique_ptr<Work> all_gather(const void* send, void* recv, int64_t send_count, ElementType type) override {
    return issue(describe("all_gather", send_count, type), send_count, [=, this] {
      return ncclAllGather(send, recv, static_cast<size_t>(send_count), nccl_type(type), state_->comm,
                           state_->comm_stream);
    });
  }

  // A one-element all-reduce: it completes only once every rank has queued it.
  absl::Status barrier() override {
    return issue("barrier", 1, [this] {
             return ncclAllReduce(state_->scratch, state_->scratch, 1, ncclFloat64, ncclSum, state_->comm,
                                  state_->comm_stream);
           })
        ->wait();
  }

  void begin_group() override {
    State& s = *state_;
    if (s.grouping) return;  // one level: nested groups are one group
    assign(s.group_status, absl::OkStatus());
    if (s.aborted) return;
    if (const ncclResult_t result = ncclGroupStart(); result != ncclSuccess) {
      assign(s.group_status, s.fail(code_of(result), "ncclGroupStart", nccl_text(result, nullptr)));
      return;
    }
    s.grouping = true;
  }

  absl::Status end_group() override {
    State& s = *state_;
    if (!s.grouping) return s.group_status;
    // The collectives go on the stream at ncclGroupEnd: order them after the compute work
    // queued until now (a wait queued before ncclGroupEnd precedes them on the stream).
    absl::Status status = s.order_after_compute("group of collectives");
    s.grouping = false;
    if (const ncclResult_t result = ncclGroupEnd(); result != ncclSuccess && status.ok()) {
      assign(status, s.fail(code_of(result), "ncclGroupEnd", nccl_text(result, s.comm)));
    }
    for (const std::shared_ptr<Pending>& pending : s.grouped) {
      if (status.ok()) {
        if (absl::Status recorded = s.record_done(*pending); !recorded.ok()) assign(status, recorded);
      }
      if (!status.ok()) {
        pending->finished = true;
        assign(pending->status, status);
      }
    }
    s.grouped.clear();
    return status;
  }

 private:
  template <typename Call>
  std::unique_ptr<Work> issue(const std::string& what, int64_t count, Call&& call) {
    State& s = *state_;
    if (s.aborted) {
      return completed_work(s.fail(absl::StatusCode::kFailedPrecondition, what,
                                   "the nccl communicator was aborted earlier (" + s.abort_reason + ")"));
    }
    if (count < 0) {
      return completed_work(s.fail(absl::StatusCode::kInvalidArgument, what, "negative count"));
    }
    if (!s.grouping) {
      if (absl::Status ordered = s.order_after_compute(what); !ordered.ok()) return completed_work(ordered);
    }
    if (const ncclResult_t result = call(); result != ncclSuccess) {
      return completed_work(s.fail(code_of(result), what, nccl_text(result, s.comm)));
    }
    auto pending = std::make_shared<Pending>();
    pending->what = what;
    if (const cudaError_t status = cudaEventCreateWithFlags(&pending->done, cudaEventDisableTiming); status != cudaSuccess) {
      pending->done = nullptr;
      return completed_work(s.fail(absl::StatusCode::kInternal, what, "cudaEventCreate: " + cuda_text(status)));
    }
    if (s.grouping) {
      s.grouped.push_back(pending);
    } else if (absl::Status recorded = s.record_done(*pending); !recorded.ok()) {
      return completed_work(recorded);
    }
    return std::make_unique<NcclWork>(state_, std::move(pending));
  }

  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, double timeout_seconds) {
  auto* cuda = dynamic_cast<la3::LA3_CUDA_FLAVOUR::CudaBackend*>(&backend);
  if (cuda == nullptr) {
    Fail(ErrorKind::kInvalidArgument, "the nccl communicator needs a CUDA backend of this flavour, got ", backend.name());
  }
  return std::make_unique<NcclCommunicator>(*cuda, timeout_seconds);
}

}  // namespace la3::dist::LA3_CUDA_FLAVOUR
