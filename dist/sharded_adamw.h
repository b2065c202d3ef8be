// ZeRO-1 (Rajbhandari et al., "ZeRO: Memory optimizations toward training trillion parameter
// models", stage 1): AdamW whose moments are sharded across the ranks.
//
// The gradient buckets (dist/gradient_buckets.h, sharded mode) reduce-scatter each bucket, so
// rank r holds the summed gradient of its shard of every bucket. This optimizer keeps, per
// bucket, a flat copy of the parameters in bucket layout; rank r runs the AdamW update on its
// shard only (moments: 1/n of the parameters, hence 1/n of the memory), then the updated
// shards are all-gathered and copied back into the parameters. Element by element it is the
// same update as the unsharded AdamW (every element's update depends only on its own
// parameter, gradient and moments); only the gradient norm for clipping sums in another order.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "dist/communicator.h"
#include "dist/gradient_buckets.h"
#include "engine/optim/adamw.h"
#include "engine/tensor.h"

namespace la3::dist {

class ShardedAdamW {
 public:
  // `buckets` must be in sharded mode (shards == communicator.size()) and outlive this.
  // `communicator` moves the buckets' memory (the device's: mpi on the cpu, nccl on cuda);
  // `host_communicator` the host scalars (the gradient norm), over the same ranks.
  ShardedAdamW(GradientBuckets& buckets, Communicator& communicator, Communicator& host_communicator,
               const AdamWOptions& options);

  void set_lr(double lr) { optimizer_->set_lr(lr); }
  int64_t steps_taken() const { return optimizer_->steps_taken(); }

  // Clips the reduce-scattered gradients to a global L2 norm of max_norm (torch's
  // clip_grad_norm_ rule); the norm is all-reduced from the shards'. Returns the norm.
  absl::StatusOr<double> clip_grad_norm(double max_norm);

  // AdamW on this rank's shards, then all-gather of the updated weights into every parameter.
  absl::Status step();

  // Re-reads the parameters into the flat copies (after loading weights).
  void reload_parameters();

  // The whole optimizer state per parameter, in `parameters` order (collective: every rank
  // must call it), for checkpoints in the unsharded format.
  absl::Status gather_state(const std::vector<Tensor>& parameters, std::vector<Tensor>* exp_avg,
                            std::vector<Tensor>* exp_avg_sq);
  // Keeps this rank's shard of a whole per-parameter state (any world size wrote it).
  absl::Status restore_state(int64_t steps_taken, const std::vector<Tensor>& parameters,
                             const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq);

  // Bytes of optimizer state (two moments) this rank holds.
  int64_t state_bytes() const;

 private:
  // Copies between per-parameter tensors and flat bucket-layout buffers.
  void scatter_into_flat(const std::vector<Tensor>& parameters, const std::vector<Tensor>& values,
                         std::vector<Tensor>& flat) const;

  GradientBuckets& buckets_;
  Communicator& communicator_;
  Communicator& host_communicator_;
  std::vector<Tensor> flat_parameters_;  // per bucket [padded] f32
  std::vector<Tensor> shard_parameters_;  // per bucket: this rank's slice of flat_parameters_
  std::unique_ptr<AdamW> optimizer_;      // over shard_parameters_ (grads = the shard gradients)
};

}  // namespace la3::dist
