// Gradient buckets for data-parallel training: the gradients of the parameters live in a few
// flat buffers ("buckets", at most bucket_bytes each, filled in the order backward finishes
// the gradients), so the all-reduce of a bucket can start as soon as its last gradient is
// final while backward goes on with the rest of the model, and each collective moves one
// large contiguous message instead of one per parameter (as torch DDP does).
//
// Usage per optimizer step:
//   buckets.zero();                                   // gradients := 0 (views stay attached)
//   for each micro-batch: tape.backward(loss, {}, last ? buckets.ready_hook() : nullptr);
//   buckets.finish();                                 // starts what is left, waits for all
// Every parameter's grad() is a view into its bucket (attached at construction), so the
// tape accumulates straight into the buffers and the optimizer reads the reduced values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dist/communicator.h"
#include "engine/autograd/tape.h"
#include "engine/tensor.h"

namespace la3::dist {

class GradientBuckets {
 public:
  // `parameters` in the order backward makes their gradients final
  // (Tape::leaves_in_ready_order of one training step; parameters missing from that order
  // are appended in the given order). f32 tensors of one device; `communicator` works on that
  // device's memory.
  //
  // shards = 1: every bucket is all-reduced (each rank ends with the whole summed gradient).
  // shards = world size (ZeRO-1, dist/sharded_adamw.h): each bucket is padded to a multiple of
  // `shards` elements and reduce-scattered, so rank r ends with the sum of its shard only,
  // elements [r * shard_elements(b), (r + 1) * shard_elements(b)) of bucket b, in
  // shard_gradient(b).
  GradientBuckets(const std::vector<Tensor>& ready_order, const std::vector<Tensor>& all_parameters,
                  int64_t bucket_bytes, Communicator& communicator, int shards = 1);
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // Sets every gradient to zero (the views stay attached).
  void zero();

  // For the last micro-batch's backward: starts a bucket's all-reduce once its last
  // parameter is final. Non-bucket leaves are ignored.
  Tape::LeafReadyFn ready_hook();

  // Starts the buckets not started yet (in bucket order), then waits for every all-reduce.
  // The first error (a timeout names the collective and the rank) is returned.
  absl::Status finish();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  int64_t total_elements() const { return total_elements_; }
  // Bucket indices in the order their all-reduce started during the last step, and for each
  // whether it started from the ready hook (during backward) or from finish().
  const std::vector<int>& launch_order() const { return launch_order_; }
  const std::vector<bool>& launched_during_backward() const { return launched_during_backward_; }
  // Seconds finish() spent waiting for all-reduces in the last step (what overlap did not hide).
  double last_wait_seconds() const { return last_wait_seconds_; }
  // The flat buffer of bucket b (padded to a multiple of the shard count; the padding stays 0).
  const Tensor& bucket_buffer(int b) const { return buckets_[static_cast<size_t>(b)].buffer; }
  int shards() const { return shards_; }
  int64_t shard_elements(int b) const { return buckets_[static_cast<size_t>(b)].buffer.numel() / shards_; }
  // This rank's reduce-scattered shard of bucket b (sharded mode only).
  const Tensor& shard_gradient(int b) const { return buckets_[static_cast<size_t>(b)].shard_gradient; }
  // Where each parameter lives: bucket and element offset in it.
  struct Slot {
    Tensor parameter;
    int bucket = 0;
    int64_t offset = 0;
  };
  const std::vector<Slot>& slots() const { return slots_; }

 private:
  struct Bucket {
    Tensor buffer;          // [elements, padded to a multiple of shards] f32 on the parameters' device
    Tensor shard_gradient;  // [elements / shards] (sharded mode)
    int pending = 0;        // parameters not final yet in this step
    int parameters = 0;
    std::unique_ptr<Work> work;
  };
  void launch(int bucket, bool during_backward);

  Communicator& communicator_;
  int shards_ = 1;
  std::vector<Bucket> buckets_;
  std::vector<Slot> slots_;
  std::vector<std::pair<const void*, int>> bucket_of_;  // parameter identity -> bucket (sorted)
  std::vector<int> launch_order_;
  std::vector<bool> launched_during_backward_;
  int64_t total_elements_ = 0;
  double last_wait_seconds_ = 0.0;
};

}  // namespace la3::dist
