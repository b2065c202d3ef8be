#include "model/train_step.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "engine/ops/attention.h"
#include "engine/ops/embedding.h"

namespace la3 {

namespace {

// What a step reads back from the device, gathered into one copy: each micro-batch's loss (a
// device scalar, kept until the read) and the gradient norm's partial sums. On a CUDA device
// every read makes the host wait for the queue to drain, so reading each loss as it comes
// (loss.item()) and the norm separately cost micro-batches + 1 waits per step; this costs one.
class StepReadback {
 public:
  StepReadback(Device device, size_t micro_batches) : device_(device), losses_(micro_batches, 0.0) {}

  // Keeps micro-batch `index`'s loss (a one-element f32 tensor on the device); no wait.
  void keep_loss(size_t index, const Tensor& loss) { pending_losses_.emplace_back(index, loss); }

  // Queues the squared-norm reduction of the parameters' gradients (once they are final,
  // after the all-reduce); no wait.
  void queue_gradient_norm(const std::vector<Tensor>& parameters) {
    for (const Tensor& parameter : parameters) {
      const Tensor grad = parameter.grad();
      if (!grad.defined()) continue;
      dense_grads_.push_back(grad.contiguous());
      spans_.push_back(Backend::Span{dense_grads_.back().data<float>(), dense_grads_.back().numel()});
    }
    norm_queued_ = true;
  }

  // The one copy: partials (doubles), then the losses (floats), in one device buffer.
  void read() {
    Backend& backend = backend_for(device_);
    const int64_t partial_count = norm_queued_ ? backend.sum_of_squares_partial_count(spans_) : 0;
    const int64_t loss_words = (static_cast<int64_t>(losses_.size()) + 1) / 2;  // two floats per 8-byte word
    // i64 storage serves as raw 8-byte-aligned bytes (tensors have no f64 dtype).
    const Tensor buffer = Tensor::empty({partial_count + loss_words}, DType::kI64, device_);
    auto* partials = reinterpret_cast<double*>(buffer.data<int64_t>());
    auto* losses = reinterpret_cast<float*>(partials + partial_count);
    if (partial_count > 0) backend.sum_of_squares_partials(spans_, partials);
    for (const auto& [index, loss] : pending_losses_) {
      backend.copy_on_device(losses + index, loss.data<float>(), sizeof(float));
    }
    std::vector<int64_t> host(static_cast<size_t>(buffer.numel()));
    backend.copy_to_host(host.data(), buffer.data<int64_t>(), host.size() * sizeof(int64_t));
    const auto* host_partials = reinterpret_cast<const double*>(host.data());
    const auto* host_losses = reinterpret_cast<const float*>(host_partials + partial_count);
    double sum_squares = 0.0;
    for (int64_t i = 0; i < partial_count; ++i) sum_squares += host_partials[i];  // sum_of_squares' order
    norm_ = norm_queued_ ? std::sqrt(sum_squares) : -1.0;
    for (size_t i = 0; i < losses_.size(); ++i) losses_[i] = host_losses[i];
    pending_losses_.clear();
    dense_grads_.clear();
    spans_.clear();
  }

  double loss_sum() const {
    double sum = 0.0;
    for (double loss : losses_) sum += loss;  // in micro-batch order, in double
    return sum;
  }
  double gradient_norm() const { return norm_; }

 private:
  Device device_;
  std::vector<double> losses_;
  std::vector<std::pair<size_t, Tensor>> pending_losses_;
  std::vector<Tensor> dense_grads_;  // keeps contiguous copies alive until reduced
  std::vector<Backend::Span> spans_;
  bool norm_queued_ = false;
  double norm_ = -1.0;
};

}  // namespace

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0.0) return 1.0f;
  const double coefficient = max_norm / (norm + 1e-6);
  return coefficient < 1.0 ? static_cast<float>(coefficient) : 1.0f;
}

absl::Status AdamWStep::clip_and_step(double max_norm, double norm) {
  adamw_.step(clip_coefficient(norm, max_norm));
  return absl::OkStatus();
}

absl::StatusOr<TrainStepResult> train_step(const T5Model& model, const std::vector<MicroBatch>& micro_batches,
                                           StepOptimizer& optimizer, const TrainStepOptions& options) {
  double normaliser = options.normaliser;
  if (normaliser == 0.0) {
    for (const MicroBatch& micro : micro_batches) {
      normaliser += ops::caption_loss_normaliser(micro.batch->labels, micro.batch->group, options.loss);
    }
  }
  TrainStepResult result;
  StepReadback readback(model.device(), micro_batches.size());
  for (size_t i = 0; i < micro_batches.size(); ++i) {
    const Batch& batch = *micro_batches[i].batch;
    T5ForwardOptions forward;
    forward.training = true;
    forward.seed = options.seed;
    forward.step = options.step;
    forward.dropout_row_offset = static_cast<uint64_t>(micro_batches[i].first_row);
    forward.recompute = options.recompute;
    forward.activations = options.activations;
    Tape tape;
    const Tensor loss = batch_loss(model, batch, options.loss, forward, normaliser);
    readback.keep_loss(i, loss);
    const bool last = i + 1 == micro_batches.size();
    tape.backward(loss, Tensor(), last ? options.last_backward_leaf_ready : Tape::LeafReadyFn());
    result.tokens += batch.source_tokens + batch.target_tokens;
  }
  if (options.gradients_final) {
    if (absl::Status s = options.gradients_final(); !s.ok()) return s;
  }
  if (options.clip_grad_norm > 0.0 && optimizer.norm_in_readback()) readback.queue_gradient_norm(optimizer.parameters());
  readback.read();  // the step's one wait for the device
  result.loss = readback.loss_sum();
  result.gradient_norm = readback.gradient_norm();
  if (options.before_update) {
    if (absl::Status s = options.before_update(result); !s.ok()) return s;
  } else if (!std::isfinite(result.loss)) {
    return absl::InternalError(absl::StrCat("loss became ", result.loss, " at step ", options.step,
                                            "; lower optimizer.lr or enable training.clip_grad_norm"));
  }
  if (absl::Status s = optimizer.clip_and_step(options.clip_grad_norm, result.gradient_norm); !s.ok()) return s;
  return result;
}

}  // namespace la3
