#include "engine/ops/cross_entropy.h"

#include <vector>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

Tensor cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& options) {
  constexpr const char* kOp = "cross_entropy";
  const CheckedLabels checked = check_token_labels(kOp, logits_in, labels_in, options.ignore_index);
  const Tensor logits = logits_in.contiguous();
  const Tensor& labels = checked.labels;
  const int64_t counted = checked.counted;
  kernels::CrossEntropyParams p;
  p.vocab = logits.size(-1);
  p.rows = labels.numel();
  p.ignore_index = options.ignore_index;
  const int64_t* label_data = labels.data<int64_t>();
  // The logits and their gradient are activations (f32 or bf16); the losses and lse are f32.
  const DType act = logits.dtype();
  Tensor row_loss = Tensor::empty({p.rows}, DType::kF32, logits.device());  // [rows]
  Tensor row_lse = Tensor::empty({p.rows}, DType::kF32, logits.device());   // [rows], saved for backward
  backend_for(logits.device())
      .cross_entropy_forward(p, act, logits.raw_data(), label_data, row_loss.data<float>(), row_lse.data<float>());

  // Reduced on the device in double, in a fixed order (deterministic): the loss scalar is a
  // device tensor; `counted` comes from the labels' host check.
  const bool mean = options.reduction == Reduction::kMean;
  const double divisor = mean ? static_cast<double>(counted) : 1.0;
  Tensor out = Tensor::empty({}, DType::kF32, logits.device());
  backend_for(logits.device()).sum_to_scalar(p.rows, row_loss.data<float>(), counted == 0 ? 0.0 : 1.0 / divisor,
                                             out.data<float>());

  if (should_record({&logits_in})) {
    record_op(kOp, {logits_in, labels_in}, out,
              [p, act, logits, labels, row_lse, divisor, counted](const Tensor& dout_in) {
                // row weight = upstream / divisor, the upstream read on the device.
                const Tensor dout = dout_in.contiguous();
                Backend& backend = backend_for(logits.device());
                const double weight = counted == 0 ? 0.0 : 1.0 / divisor;
                Tensor row_weight = Tensor::full({p.rows}, weight, DType::kF32, logits.device());
                backend.scale_by_device_scalar(p.rows, DType::kF32, dout.data<float>(), row_weight.raw_data());
                Tensor dlogits = Tensor::empty_like(logits);
                backend.cross_entropy_backward(p, act, logits.raw_data(), labels.data<int64_t>(), row_lse.data<float>(),
                                               row_weight.data<float>(), dlogits.raw_data());
                return std::vector<Tensor>{dlogits, Tensor()};
              });
  }
  return out;
}

}  // namespace la3::ops
