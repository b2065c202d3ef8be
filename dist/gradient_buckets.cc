#include "dist/gradient_buckets.h"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "engine/error.h"

namespace la3::dist {

GradientBuckets::GradientBuckets(const std::vector<Tensor>& ready_order, const std::vector<Tensor>& all_parameters,
                                 int64_t bucket_bytes, Communicator& communicator, int shards)
    : communicator_(communicator), shards_(shards) {
  LA3_CHECK(bucket_bytes >= 4, "gradient buckets: bucket size must be at least one float, got ", bucket_bytes, " bytes");
  LA3_CHECK(shards >= 1, "gradient buckets: shard count must be >= 1, got ", shards);
  // The order: backward's, then any parameter backward did not reach.
  std::vector<Tensor> order;
  std::unordered_set<const void*> seen;
  std::unordered_set<const void*> known;
  for (const Tensor& p : all_parameters) known.insert(p.identity());
  for (const Tensor& p : ready_order) {
    if (known.count(p.identity()) && seen.insert(p.identity()).second) order.push_back(p);
  }
  for (const Tensor& p : all_parameters) {
    if (seen.insert(p.identity()).second) order.push_back(p);
  }
  // Greedy packing in that order; a parameter larger than a bucket gets a bucket of its own.
  const int64_t bucket_elements = bucket_bytes / 4;
  std::vector<std::vector<Tensor>> members;
  int64_t filled = 0;
  for (const Tensor& p : order) {
    LA3_CHECK(p.dtype() == DType::kF32 && p.is_contiguous(), "gradient buckets: parameter ", p.describe(),
              " must be contiguous f32");
    if (members.empty() || (filled > 0 && filled + p.numel() > bucket_elements)) {
      members.emplace_back();
      filled = 0;
    }
    members.back().push_back(p);
    filled += p.numel();
  }
  for (const std::vector<Tensor>& group : members) {
    int64_t elements = 0;
    for (const Tensor& p : group) elements += p.numel();
    const int64_t padded = (elements + shards_ - 1) / shards_ * shards_;
    Bucket bucket;
    bucket.buffer = Tensor::zeros({padded}, DType::kF32, group.front().device());
    if (shards_ > 1) bucket.shard_gradient = Tensor::zeros({padded / shards_}, DType::kF32, group.front().device());
    bucket.parameters = static_cast<int>(group.size());
    int64_t offset = 0;
    for (const Tensor& p : group) {
      p.set_grad(bucket.buffer.narrow(0, offset, p.numel()).view(p.shape()));
      bucket_of_.emplace_back(p.identity(), static_cast<int>(buckets_.size()));
      slots_.push_back(Slot{p, static_cast<int>(buckets_.size()), offset});
      offset += p.numel();
    }
    total_elements_ += elements;
    buckets_.push_back(std::move(bucket));
  }
  std::sort(bucket_of_.begin(), bucket_of_.end());
}

void GradientBuckets::zero() {
  for (Bucket& bucket : buckets_) {
    bucket.buffer.fill(0.0);
    bucket.pending = bucket.parameters;
    bucket.work.reset();
  }
  launch_order_.clear();
  launched_during_backward_.clear();
}

void GradientBuckets::launch(int b, bool during_backward) {
  Bucket& bucket = buckets_[static_cast<size_t>(b)];
  if (shards_ > 1) {
    bucket.work = communicator_.reduce_scatter_sum(bucket.buffer.raw_data(), bucket.shard_gradient.raw_data(),
                                                   bucket.shard_gradient.numel(), ElementType::kF32);
  } else {
    bucket.work = communicator_.all_reduce_sum(bucket.buffer.raw_data(), bucket.buffer.numel(), ElementType::kF32);
  }
  launch_order_.push_back(b);
  launched_during_backward_.push_back(during_backward);
}

Tape::LeafReadyFn GradientBuckets::ready_hook() {
  return [this](const Tensor& leaf) {
    auto found = std::lower_bound(bucket_of_.begin(), bucket_of_.end(), std::make_pair(leaf.identity(), -1));
    if (found == bucket_of_.end() || found->first != leaf.identity()) return;
    Bucket& bucket = buckets_[static_cast<size_t>(found->second)];
    if (--bucket.pending == 0 && !bucket.work) launch(found->second, true);
  };
}

absl::Status GradientBuckets::finish() {
  for (size_t b = 0; b < buckets_.size(); ++b) {
    if (!buckets_[b].work) launch(static_cast<int>(b), false);
  }
  const auto start = std::chrono::steady_clock::now();
  absl::Status first_error;
  for (int b : launch_order_) {
    absl::Status status = buckets_[static_cast<size_t>(b)].work->wait();
    if (!status.ok() && first_error.ok()) {
      first_error = absl::Status(status.code(), absl::StrCat("gradient bucket ", b, ": ", status.message()));
    }
  }
  last_wait_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return first_error;
}

}  // namespace la3::dist
