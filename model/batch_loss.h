// The loss of one collated batch on the model's device: what training, validation
// (`engine train`) and scoring (`engine score`) all compute, one implementation.
#pragma once

#include "data/batching.h"
#include "engine/ops/sequence_loss.h"
#include "model/t5_model.h"

namespace la3 {

// The loss of one batch (differentiable when a tape is active): the sum over its groups
// divided by `normaliser` (0 = the batch's own; data parallelism and gradient accumulation
// pass the whole global batch's). The batch is collated on the host; the model's device gets
// its own copy. Without waiting for the device: the ids, labels and groups are validated here
// on the host with the ops' errors (the ops are told so and skip their read-backs), the
// decoder inputs are collate's (or shifted here, on the host), and the uploads are queued
// asynchronously -- the batch's tensors must not be written until the device is next
// synchronised (train_step's readback, or reading the loss).
Tensor batch_loss(const T5Model& model, const Batch& batch, ops::CaptionLoss mode, const T5ForwardOptions& forward,
                  double normaliser = 0.0);

}  // namespace la3
