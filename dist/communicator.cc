#include "dist/communicator.h"

#include <cstring>

namespace la3::dist {

size_t element_size(ElementType type) {
  switch (type) {
    case ElementType::kF32: return 4;
    case ElementType::kF64: return 8;
    case ElementType::kI64: return 8;
  }
  return 0;
}

const char* element_type_name(ElementType type) {
  switch (type) {
    case ElementType::kF32: return "f32";
    case ElementType::kF64: return "f64";
    case ElementType::kI64: return "i64";
  }
  return "?";
}

namespace {

class CompletedWork : public Work {
 public:
  explicit CompletedWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status wait() override { return status_; }

 private:
  absl::Status status_;
};

class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  std::unique_ptr<Work> all_reduce_sum(void*, int64_t, ElementType) override { return completed_work(); }
  std::unique_ptr<Work> broadcast(void*, int64_t, ElementType, int root) override {
    if (root != 0) return completed_work(absl::InvalidArgumentError("broadcast: root must be 0 in a single-rank world"));
    return completed_work();
  }
  std::unique_ptr<Work> reduce_scatter_sum(const void* send, void* recv, int64_t count, ElementType type) override {
    if (send != recv) std::memmove(recv, send, static_cast<size_t>(count) * element_size(type));
    return completed_work();
  }
  std::unique_ptr<Work> all_gather(const void* send, void* recv, int64_t count, ElementType type) override {
    if (send != recv) std::memmove(recv, send, static_cast<size_t>(count) * element_size(type));
    return completed_work();
  }
  absl::Status barrier() override { return absl::OkStatus(); }
};

}  // namespace

std::unique_ptr<Work> completed_work(absl::Status status) { return std::make_unique<CompletedWork>(std::move(status)); }

std::unique_ptr<Communicator> make_single_communicator() { return std::make_unique<SingleCommunicator>(); }

}  // namespace la3::dist
