// AdamW (Loshchilov & Hutter) with fp32 state, step for step what torch.optim.AdamW does:
//   p <- p - lr * weight_decay * p                       (decoupled weight decay)
//   m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/tensor.h"

namespace la3 {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // torch's default
  // Keep a bf16 copy of every parameter, written by the update kernel in the same pass and
  // registered with the device backend, so bf16 GEMMs read the weights without casting them
  // (fp32 master weights, bf16 compute copies: docs/CUDA.md, Precision).
  // The copies are exact roundings of the masters; results are bit-identical without them.
  // While this optimizer lives, parameters may change only through step() or, after
  // changing them otherwise (loading weights), refresh_bf16_copies().
  bool bf16_weight_copies = false;
};

class AdamW {
 public:
  // `parameters` are f32 leaves with requires_grad; their gradients are read at step().
  AdamW(std::vector<Tensor> parameters, const AdamWOptions& options);
  ~AdamW();  // unregisters the bf16 copies
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // One update of every parameter that has a gradient (parameters without one are skipped,
  // as torch does). Throws EngineError on a gradient of the wrong shape.
  // grad_scale multiplies every gradient as it is read (the clipping coefficient; the
  // gradients in memory are left as they are).
  void step(float grad_scale = 1.0f);
  // Drops every parameter's gradient.
  void zero_grad();

  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  int64_t steps_taken() const { return step_; }
  const std::vector<Tensor>& parameters() const { return parameters_; }
  // State tensors (same shapes as the parameters), for checkpoints and tests.
  const std::vector<Tensor>& exp_avg() const { return exp_avg_; }
  const std::vector<Tensor>& exp_avg_sq() const { return exp_avg_sq_; }

  // The bf16 copies (empty unless options.bf16_weight_copies), in parameter order.
  const std::vector<Tensor>& bf16_copies() const { return bf16_copies_; }
  // Re-derives the bf16 copies from the fp32 parameters (after loading weights).
  void refresh_bf16_copies();

  // Restores a saved state (same parameter order and shapes) for exact resume. Also
  // refreshes the bf16 copies, so load the weights first.
  absl::Status restore_state(int64_t steps_taken, const std::vector<Tensor>& exp_avg,
                             const std::vector<Tensor>& exp_avg_sq);

 private:
  std::vector<Tensor> parameters_;
  std::vector<Tensor> exp_avg_;
  std::vector<Tensor> exp_avg_sq_;
  std::vector<Tensor> bf16_copies_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

// Scales all gradients so that their global L2 norm is at most max_norm (as
// torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);

}  // namespace la3
