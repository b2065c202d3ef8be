#include "dist/mpi_communicator.h"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dist/world.h"

namespace la3::dist {

namespace {

MPI_Datatype mpi_type(ElementType type) {
  switch (type) {
    case ElementType::kF32: return MPI_FLOAT;
    case ElementType::kF64: return MPI_DOUBLE;
    case ElementType::kI64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

// One submitted collective: how to start it, and its completion state.
struct Operation {
  std::string what;                        // "all_reduce_sum of 1024 f32", for messages
  std::function<int(MPI_Request*)> start;  // issues the non-blocking call
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  absl::Status status;

  void complete(absl::Status result) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      done = true;
      status = std::move(result);
    }
    finished.notify_all();
  }
};

class MpiWork : public Work {
 public:
  MpiWork(std::shared_ptr<Operation> operation, double timeout_seconds, int rank)
      : operation_(std::move(operation)), timeout_seconds_(timeout_seconds), rank_(rank) {}

  absl::Status wait() override {
    std::unique_lock<std::mutex> lock(operation_->mutex);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds_);
    if (!operation_->finished.wait_until(lock, deadline, [&] { return operation_->done; })) {
      return absl::DeadlineExceededError(absl::StrCat("rank ", rank_, ": ", operation_->what, " did not complete within ",
                                                      timeout_seconds_,
                                                      " s (distributed.timeout_s): another rank is stuck or has died"));
    }
    return operation_->status;
  }

 private:
  std::shared_ptr<Operation> operation_;
  double timeout_seconds_;
  int rank_;
};

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_seconds) : timeout_seconds_(timeout_seconds) {
    // A private communicator: its collectives never match those of another communicator.
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    progress_ = std::thread([this] { progress_loop(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    progress_.join();
    // A collective still in flight (after a timeout) keeps the communicator alive: freeing
    // it would be an MPI error, and the job is being aborted anyway.
    if (clean_) MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }

  std::unique_ptr<Work> all_reduce_sum(void* buffer, int64_t count, ElementType type) override {
    if (auto bad = check_count("all_reduce_sum", count); bad) return bad;
    return submit(describe("all_reduce_sum", count, type), [=, this](MPI_Request* request) {
      return MPI_Iallreduce(MPI_IN_PLACE, buffer, static_cast<int>(count), mpi_type(type), MPI_SUM, comm_, request);
    });
  }

  std::unique_ptr<Work> broadcast(void* buffer, int64_t count, ElementType type, int root) override {
    if (auto bad = check_count("broadcast", count); bad) return bad;
    if (root < 0 || root >= size_) {
      return completed_work(absl::InvalidArgumentError(absl::StrCat("broadcast: root ", root, " is not a rank of ", size_)));
    }
    return submit(absl::StrCat(describe("broadcast", count, type), " from rank ", root), [=, this](MPI_Request* request) {
      return MPI_Ibcast(buffer, static_cast<int>(count), mpi_type(type), root, comm_, request);
    });
  }

  std::unique_ptr<Work> reduce_scatter_sum(const void* send, void* recv, int64_t recv_count, ElementType type) override {
    if (auto bad = check_count("reduce_scatter_sum", recv_count * size_); bad) return bad;
    return submit(describe("reduce_scatter_sum", recv_count, type), [=, this](MPI_Request* request) {
      return MPI_Ireduce_scatter_block(send, recv, static_cast<int>(recv_count), mpi_type(type), MPI_SUM, comm_, request);
    });
  }

  std::unique_ptr<Work> all_gather(const void* send, void* recv, int64_t send_count, ElementType type) override {
    if (auto bad = check_count("all_gather", send_count * size_); bad) return bad;
    return submit(describe("all_gather", send_count, type), [=, this](MPI_Request* request) {
      return MPI_Iallgather(send, static_cast<int>(send_count), mpi_type(type), recv, static_cast<int>(send_count),
                            mpi_type(type), comm_, request);
    });
  }

  absl::Status barrier() override {
    return submit("barrier", [this](MPI_Request* request) { return MPI_Ibarrier(comm_, request); })->wait();
  }

 private:
  static std::string describe(const char* op, int64_t count, ElementType type) {
    return absl::StrCat(op, " of ", count, " ", element_type_name(type));
  }

  // MPI counts are int; a larger buffer must be split by the caller (buckets are far smaller).
  std::unique_ptr<Work> check_count(const char* op, int64_t count) const {
    if (count < 0 || count > INT_MAX) {
      return completed_work(absl::InvalidArgumentError(
          absl::StrCat(op, ": ", count, " elements is outside MPI's count range [0, ", INT_MAX, "]")));
    }
    return nullptr;
  }

  std::unique_ptr<Work> submit(std::string what, std::function<int(MPI_Request*)> start) {
    auto operation = std::make_shared<Operation>();
    operation->what = std::move(what);
    operation->start = std::move(start);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(operation);
    }
    wake_.notify_all();
    return std::make_unique<MpiWork>(operation, timeout_seconds_, rank_);
  }

  void progress_loop() {
    std::vector<std::pair<std::shared_ptr<Operation>, MPI_Request>> active;
    for (;;) {
      std::deque<std::shared_ptr<Operation>> starting;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (active.empty()) wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) {
          clean_ = active.empty() && queue_.empty();
          for (auto& [operation, request] : active) {
            operation->complete(absl::CancelledError(absl::StrCat(operation->what, ": the communicator was destroyed")));
          }
          for (auto& operation : queue_) {
            operation->complete(absl::CancelledError(absl::StrCat(operation->what, ": the communicator was destroyed")));
          }
          return;
        }
        starting.swap(queue_);
      }
      for (std::shared_ptr<Operation>& operation : starting) {
        MPI_Request request = MPI_REQUEST_NULL;
        const int code = operation->start(&request);
        if (code != MPI_SUCCESS) {
          operation->complete(absl::InternalError(absl::StrCat("rank ", rank_, ": ", operation->what, ": ", mpi_error_text(code))));
        } else {
          active.emplace_back(std::move(operation), request);
        }
      }
      bool progressed = false;
      for (size_t i = 0; i < active.size();) {
        int flag = 0;
        const int code = MPI_Test(&active[i].second, &flag, MPI_STATUS_IGNORE);
        if (code != MPI_SUCCESS || flag) {
          active[i].first->complete(code == MPI_SUCCESS ? absl::OkStatus()
                                                        : absl::InternalError(absl::StrCat("rank ", rank_, ": ", active[i].first->what,
                                                                                           ": ", mpi_error_text(code))));
          active.erase(active.begin() + static_cast<std::ptrdiff_t>(i));
          progressed = true;
        } else {
          ++i;
        }
      }
      // Yield, not sleep: a collective needs many progress calls (one per pipelined segment),
      // and a sleep costs ~60 us each; yield gives the core to compute threads when they want it.
      if (!active.empty() && !progressed) std::this_thread::yield();
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_seconds_;
  std::thread progress_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Operation>> queue_;
  bool stopping_ = false;
  bool clean_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds) {
  return std::make_unique<MpiCommunicator>(timeout_seconds);
}

}  // namespace la3::dist
