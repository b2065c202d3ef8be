#include "dist/sharded_adamw.h"

#include <cmath>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "engine/error.h"

namespace la3::dist {

namespace {

// The parameter's elements inside a flat bucket buffer, shaped like the parameter.
Tensor slot_view(const Tensor& flat, const GradientBuckets::Slot& slot) {
  return flat.narrow(0, slot.offset, slot.parameter.numel()).view(slot.parameter.shape());
}

}  // namespace

ShardedAdamW::ShardedAdamW(GradientBuckets& buckets, Communicator& communicator, Communicator& host_communicator,
                           const AdamWOptions& options)
    : buckets_(buckets), communicator_(communicator), host_communicator_(host_communicator) {
  LA3_CHECK(buckets.shards() == communicator.size(), "ShardedAdamW: the buckets have ", buckets.shards(),
            " shards for ", communicator.size(), " ranks");
  for (int b = 0; b < buckets.bucket_count(); ++b) {
    const Tensor& buffer = buckets.bucket_buffer(b);
    flat_parameters_.push_back(Tensor::zeros(buffer.shape(), DType::kF32, buffer.device()));
    const int64_t shard = buckets.shard_elements(b);
    Tensor mine = flat_parameters_.back().narrow(0, communicator.rank() * shard, shard);
    mine.set_requires_grad(true);
    mine.set_grad(buckets.shard_gradient(b));
    shard_parameters_.push_back(mine);
  }
  reload_parameters();
  optimizer_ = std::make_unique<AdamW>(shard_parameters_, options);
}

void ShardedAdamW::reload_parameters() {
  for (const GradientBuckets::Slot& slot : buckets_.slots()) {
    slot_view(flat_parameters_[static_cast<size_t>(slot.bucket)], slot).copy_from(slot.parameter);
  }
}

absl::StatusOr<double> ShardedAdamW::clip_grad_norm(double max_norm) {
  // Every bucket's shard in one reduction (one launch per 32 shards and one copy back on a GPU):
  // the shards of a rank all live on its device.
  std::vector<Backend::Span> spans;
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    const Tensor& grad = buckets_.shard_gradient(b);
    spans.push_back(Backend::Span{grad.data<float>(), grad.numel()});
  }
  double sum_squares = 0.0;
  if (!spans.empty()) sum_squares = backend_for(buckets_.shard_gradient(0).device()).sum_of_squares(spans);
  if (absl::Status s = host_communicator_.all_reduce_sum(&sum_squares, 1); !s.ok()) return s;
  const double norm = std::sqrt(sum_squares);
  const double coefficient = max_norm / (norm + 1e-6);  // torch's clip_grad_norm_
  if (coefficient < 1.0) {
    for (int b = 0; b < buckets_.bucket_count(); ++b) {
      const Tensor& grad = buckets_.shard_gradient(b);
      backend_for(grad.device()).scale(grad.numel(), DType::kF32, static_cast<float>(coefficient), grad.data<float>(),
                                       grad.data<float>());
    }
  }
  return norm;
}

absl::Status ShardedAdamW::step() {
  optimizer_->step();
  // Every rank's updated shard into every rank's flat copy (in place: this rank's own shard is
  // both the send buffer and its slot of the receive buffer, so stage it first).
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    const Tensor mine = shard_parameters_[static_cast<size_t>(b)].clone();
    absl::Status s = communicator_
                         .all_gather(mine.raw_data(), flat_parameters_[static_cast<size_t>(b)].raw_data(),
                                     buckets_.shard_elements(b), ElementType::kF32)
                         ->wait();
    if (!s.ok()) return s;
  }
  for (const GradientBuckets::Slot& slot : buckets_.slots()) {
    slot.parameter.copy_from(slot_view(flat_parameters_[static_cast<size_t>(slot.bucket)], slot));
  }
  return absl::OkStatus();
}

void ShardedAdamW::scatter_into_flat(const std::vector<Tensor>& parameters, const std::vector<Tensor>& values,
                                     std::vector<Tensor>& flat) const {
  std::unordered_map<const void*, size_t> index;
  for (size_t i = 0; i < parameters.size(); ++i) index[parameters[i].identity()] = i;
  for (const GradientBuckets::Slot& slot : buckets_.slots()) {
    auto found = index.find(slot.parameter.identity());
    LA3_CHECK(found != index.end(), "ShardedAdamW: a bucketed parameter ", slot.parameter.describe(),
              " is missing from the state");
    slot_view(flat[static_cast<size_t>(slot.bucket)], slot).copy_from(values[found->second]);
  }
}

absl::Status ShardedAdamW::gather_state(const std::vector<Tensor>& parameters, std::vector<Tensor>* exp_avg,
                                        std::vector<Tensor>* exp_avg_sq) {
  std::unordered_map<const void*, size_t> index;
  for (size_t i = 0; i < parameters.size(); ++i) index[parameters[i].identity()] = i;
  exp_avg->assign(parameters.size(), Tensor());
  exp_avg_sq->assign(parameters.size(), Tensor());
  for (int moment = 0; moment < 2; ++moment) {
    const std::vector<Tensor>& shards = moment == 0 ? optimizer_->exp_avg() : optimizer_->exp_avg_sq();
    std::vector<Tensor>& out = moment == 0 ? *exp_avg : *exp_avg_sq;
    std::vector<Tensor> flat;
    for (int b = 0; b < buckets_.bucket_count(); ++b) {
      const Tensor& shard = shards[static_cast<size_t>(b)];
      flat.push_back(Tensor::zeros(buckets_.bucket_buffer(b).shape(), DType::kF32, shard.device()));
      absl::Status s = communicator_
                           .all_gather(shard.raw_data(), flat.back().raw_data(), buckets_.shard_elements(b),
                                       ElementType::kF32)
                           ->wait();
      if (!s.ok()) return s;
    }
    for (const GradientBuckets::Slot& slot : buckets_.slots()) {
      auto found = index.find(slot.parameter.identity());
      if (found == index.end()) continue;
      out[found->second] = slot_view(flat[static_cast<size_t>(slot.bucket)], slot).clone();
    }
  }
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (!(*exp_avg)[i].defined()) {
      return absl::InternalError(absl::StrCat("ShardedAdamW: parameter ", i, " is in no gradient bucket"));
    }
  }
  return absl::OkStatus();
}

absl::Status ShardedAdamW::restore_state(int64_t steps_taken, const std::vector<Tensor>& parameters,
                                         const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq) {
  if (exp_avg.size() != parameters.size() || exp_avg_sq.size() != parameters.size()) {
    return absl::InvalidArgumentError(absl::StrCat("ShardedAdamW state has ", exp_avg.size(), "/", exp_avg_sq.size(),
                                                   " moment tensors for ", parameters.size(), " parameters"));
  }
  std::vector<Tensor> flat_avg, flat_avg_sq, shard_avg, shard_avg_sq;
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    flat_avg.push_back(Tensor::zeros(buckets_.bucket_buffer(b).shape(), DType::kF32, buckets_.bucket_buffer(b).device()));
    flat_avg_sq.push_back(Tensor::zeros(buckets_.bucket_buffer(b).shape(), DType::kF32, buckets_.bucket_buffer(b).device()));
  }
  if (absl::Status s = CaptureStatus([&] {
        scatter_into_flat(parameters, exp_avg, flat_avg);
        scatter_into_flat(parameters, exp_avg_sq, flat_avg_sq);
      });
      !s.ok()) {
    return s;
  }
  for (int b = 0; b < buckets_.bucket_count(); ++b) {
    const int64_t shard = buckets_.shard_elements(b);
    shard_avg.push_back(flat_avg[static_cast<size_t>(b)].narrow(0, communicator_.rank() * shard, shard));
    shard_avg_sq.push_back(flat_avg_sq[static_cast<size_t>(b)].narrow(0, communicator_.rank() * shard, shard));
  }
  reload_parameters();
  return optimizer_->restore_state(steps_taken, shard_avg, shard_avg_sq);
}

int64_t ShardedAdamW::state_bytes() const {
  int64_t elements = 0;
  for (int b = 0; b < buckets_.bucket_count(); ++b) elements += buckets_.shard_elements(b);
  return 2 * elements * static_cast<int64_t>(sizeof(float));
}

}  // namespace la3::dist
