// One optimizer step of T5 training, shared by the trainer (`engine train`) and the training
// benchmark, so that what is measured is what trains: for each micro-batch the forward with
// the k+1-caption loss (divided by the whole step's normaliser) and the backward, gradients
// accumulating; then one read of the device (every micro-batch's loss and the gradient norm's
// partial sums in a single copy), gradient clipping and the optimizer update.
//
// Host synchronisations: on a CUDA device the host waits for the device only when it reads
// device memory (or a copy is synchronous). The step reads once (the readback above) and that
// is its only wait: batch_loss validates the batch on the host and uploads it without waiting
// (docs/MEMORY.md).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "data/batching.h"
#include "engine/autograd/tape.h"
#include "engine/ops/sequence_loss.h"
#include "engine/optim/adamw.h"
#include "model/batch_loss.h"
#include "model/t5_model.h"

namespace la3 {

struct MicroBatch {
  const Batch* batch = nullptr;
  int64_t first_row = 0;  // global index of its row 0 (the dropout key offset)
};

// What the step updates: clipping to a global norm, then the update.
class StepOptimizer {
 public:
  virtual ~StepOptimizer() = default;
  virtual const std::vector<Tensor>& parameters() const = 0;
  // True when the step's readback should carry the gradient norm (the optimizer sees every
  // gradient); false when the optimizer computes the norm itself (ZeRO-1 shards).
  virtual bool norm_in_readback() const { return true; }
  // `norm` is the gradients' norm from the readback (meaningless unless norm_in_readback()
  // and max_norm > 0); max_norm 0 = no clipping.
  virtual absl::Status clip_and_step(double max_norm, double norm) = 0;
};

// Plain AdamW over the model's parameters.
class AdamWStep final : public StepOptimizer {
 public:
  explicit AdamWStep(AdamW& adamw) : adamw_(adamw) {}
  const std::vector<Tensor>& parameters() const override { return adamw_.parameters(); }
  absl::Status clip_and_step(double max_norm, double norm) override;

 private:
  AdamW& adamw_;
};

struct TrainStepResult {
  double loss = 0.0;            // sum of the micro-batch losses (this process's share of the step's loss)
  double gradient_norm = -1.0;  // before clipping, when the readback carried it
  int64_t tokens = 0;           // source + target tokens processed
};

struct TrainStepOptions {
  ops::CaptionLoss loss = ops::CaptionLoss::kMean;
  uint64_t seed = 0;  // dropout: (seed, step, site, global row)
  uint64_t step = 0;
  double normaliser = 0.0;      // the whole step's (all ranks, all micro-batches); 0 = these micro-batches'
  double clip_grad_norm = 0.0;  // 0 = off
  T5ForwardOptions::Recompute recompute = T5ForwardOptions::Recompute::kNone;
  DType activations = DType::kF32;  // T5ForwardOptions::activations
  // Data parallelism: the last micro-batch's backward reports each final gradient (to start its
  // all-reduce), and gradients_final() is called after the last backward (waits for them).
  Tape::LeafReadyFn last_backward_leaf_ready;
  std::function<absl::Status()> gradients_final;
  // Called with the step's result after the readback and before the update; an error stops
  // the step before the weights change (the trainer all-reduces the loss and checks it here).
  std::function<absl::Status(const TrainStepResult&)> before_update;
};

// Gradients must be zero (or absent) on entry; they hold the step's clipped gradients on return.
absl::StatusOr<TrainStepResult> train_step(const T5Model& model, const std::vector<MicroBatch>& micro_batches,
                                           StepOptimizer& optimizer, const TrainStepOptions& options);

// What clip_grad_norm_ multiplies the gradients by, the norm already known: max_norm /
// (norm + 1e-6) when that is < 1 (and max_norm > 0), else 1. AdamW::step applies it as it
// reads each gradient (no pass over the gradients), with torch's rounding.
float clip_coefficient(double norm, double max_norm);

}  // namespace la3
