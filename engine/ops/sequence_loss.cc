#include "engine/ops/sequence_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

Tensor token_log_probs(const Tensor& logits_in, const Tensor& labels_in, int64_t ignore_index) {
  constexpr const char* kOp = "token_log_probs";
  if (logits_in.rank() < 2) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": logits must be [rows, vocab] or [rows, len, vocab], got ",
         logits_in.describe());
  }
  const CheckedLabels checked = check_token_labels(kOp, logits_in, labels_in, ignore_index);
  const Tensor logits = logits_in.contiguous();
  const Tensor& labels = checked.labels;
  // Every (row, position) is one token of the caption-loss vocabulary kernels.
  kernels::CaptionLossParams p;
  p.rows = labels.numel();
  p.length = 1;
  p.vocab = logits.size(-1);
  p.ignore_index = ignore_index;
  Tensor out = Tensor::empty(labels.shape(), DType::kF32, logits.device());  // log p, 0 if ignored
  Tensor lse = Tensor::empty({p.rows}, DType::kF32, logits.device());        // saved for backward
  const DType act = logits.dtype();  // logits and dlogits: f32 or bf16 activations; log p f32
  backend_for(logits.device())
      .caption_loss_log_probs(p, act, logits.raw_data(), labels.data<int64_t>(), out.data<float>(), lse.data<float>());
  if (should_record({&logits_in})) {
    record_op(kOp, {logits_in, labels_in}, out, [p, act, logits, labels, lse](const Tensor& dout_in) {
      // d sum(g * log p) / dz = g * (onehot - softmax), g read on the device.
      const Tensor dout = dout_in.contiguous();
      Tensor dlogits = Tensor::empty_like(logits);
      backend_for(logits.device())
          .caption_loss_backward(p, act, logits.raw_data(), labels.data<int64_t>(), lse.data<float>(),
                                 dout.data<float>(), nullptr, nullptr, dlogits.raw_data());
      return std::vector<Tensor>{dlogits, Tensor()};
    });
  }
  return out;
}

absl::StatusOr<CaptionLoss> parse_caption_loss(const std::string& name) {
  if (name == "mean") return CaptionLoss::kMean;
  if (name == "token_mixture") return CaptionLoss::kTokenMixture;
  if (name == "sequence_mixture") return CaptionLoss::kSequenceMixture;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown caption loss '", name, "': expected mean, token_mixture or sequence_mixture"));
}

const char* caption_loss_name(CaptionLoss loss) {
  switch (loss) {
    case CaptionLoss::kMean: return "mean";
    case CaptionLoss::kTokenMixture: return "token_mixture";
    case CaptionLoss::kSequenceMixture: return "sequence_mixture";
  }
  return "?";
}

namespace {

kernels::CaptionLossMode kernel_mode(CaptionLoss mode) {
  switch (mode) {
    case CaptionLoss::kMean: return kernels::CaptionLossMode::kMean;
    case CaptionLoss::kTokenMixture: return kernels::CaptionLossMode::kTokenMixture;
    case CaptionLoss::kSequenceMixture: return kernels::CaptionLossMode::kSequenceMixture;
  }
  return kernels::CaptionLossMode::kMean;
}

struct GroupLayout {
  int64_t groups = 0;
  int64_t max_group_rows = 0;
};

// Group ids and labels ([rows, length], both host values) checked for the kernels: ids in
// [0, G) with every group present, and for token_mixture one target per group.
GroupLayout check_groups(const char* op, const int64_t* group, int64_t rows, const int64_t* labels, int64_t length,
                         CaptionLoss mode) {
  GroupLayout layout;
  for (int64_t r = 0; r < rows; ++r) {
    if (group[r] < 0) Fail(ErrorKind::kInvalidArgument, op, ": negative group id ", group[r], " at row ", r);
    layout.groups = std::max(layout.groups, group[r] + 1);
  }
  if (layout.groups > rows) {  // some id in [0, G) has no row: name the first
    std::vector<int64_t> ids(group, group + rows);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    int64_t missing = 0;
    while (missing < static_cast<int64_t>(ids.size()) && ids[static_cast<size_t>(missing)] == missing) ++missing;
    Fail(ErrorKind::kInvalidArgument, op, ": group ", missing, " has no rows (group ids must be 0..G-1; the largest is ",
         layout.groups - 1, " for ", rows, " rows)");
  }
  std::vector<int64_t> first(static_cast<size_t>(layout.groups), -1), size(static_cast<size_t>(layout.groups), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const size_t g = static_cast<size_t>(group[r]);
    layout.max_group_rows = std::max(layout.max_group_rows, ++size[g]);
    if (first[g] < 0) {
      first[g] = r;
      continue;
    }
    if (mode != CaptionLoss::kTokenMixture) continue;
    for (int64_t t = 0; t < length; ++t) {
      if (labels[r * length + t] != labels[first[g] * length + t]) {
        Fail(ErrorKind::kInvalidArgument, op, ": token_mixture needs one target per group, but rows ", first[g], " and ",
             r, " of group ", g, " differ at position ", t);
      }
    }
  }
  for (size_t g = 0; g < size.size(); ++g) {
    if (size[g] == 0) Fail(ErrorKind::kInvalidArgument, op, ": group ", g, " has no rows");
  }
  return layout;
}

}  // namespace

Tensor caption_loss(const Tensor& log_probs_in, const Tensor& labels_in, const std::vector<int64_t>& group,
                    CaptionLoss mode, int64_t ignore_index) {
  constexpr const char* kOp = "caption_loss";
  check_f32(kOp, "log_probs", log_probs_in);
  check_integer(kOp, "labels", labels_in);
  check_rank(kOp, "log_probs", log_probs_in, 2);
  check_same_shape(kOp, "log_probs", log_probs_in, "labels", labels_in);
  check_same_device(kOp, {&log_probs_in, &labels_in});
  const int64_t rows = log_probs_in.size(0), length = log_probs_in.size(1);
  if (static_cast<int64_t>(group.size()) != rows) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": ", group.size(), " group ids for ", rows, " rows of ",
         log_probs_in.describe());
  }
  const Device device = log_probs_in.device();
  const Tensor labels = as_int64(labels_in);
  // Validation reads the labels on the host (a copy for a GPU device); the floats stay on the device.
  const Tensor host_labels = labels.host_accessible() ? labels : labels.to_device(Device::cpu());
  const GroupLayout layout = check_groups(kOp, group.data(), rows, host_labels.data<int64_t>(), length, mode);
  const Tensor group_ids = Tensor::from_vector<int64_t>({rows}, group, device);
  const Tensor log_probs = log_probs_in.contiguous();

  kernels::CaptionLossParams p;
  p.rows = rows;
  p.length = length;
  p.groups = layout.groups;
  p.max_group_rows = layout.max_group_rows;
  p.mode = kernel_mode(mode);
  p.ignore_index = ignore_index;
  const bool record = should_record({&log_probs_in});
  Tensor out = Tensor::empty({}, DType::kF32, device);
  Tensor inverse_tokens = Tensor::empty({1}, DType::kF32, device);
  Tensor weight = record ? Tensor::empty({rows, length}, DType::kF32, device) : Tensor();
  backend_for(device).caption_loss_combine(p, log_probs.data<float>(), labels.data<int64_t>(),
                                           group_ids.data<int64_t>(), record ? weight.data<float>() : nullptr,
                                           out.data<float>(), inverse_tokens.data<float>());
  if (record) {
    record_op(kOp, {log_probs_in, labels_in}, out, [weight, inverse_tokens](const Tensor& dout_in) {
      // d loss / d log_probs = upstream * weight / tokens, all on the device.
      const Tensor dout = dout_in.contiguous();
      Backend& backend = backend_for(weight.device());
      Tensor grad = Tensor::empty_like(weight);
      backend.copy_on_device(grad.data<float>(), weight.data<float>(), weight.nbytes());
      backend.scale_by_device_scalar(grad.numel(), DType::kF32, dout.data<float>(), grad.raw_data());
      backend.scale_by_device_scalar(grad.numel(), DType::kF32, inverse_tokens.data<float>(), grad.raw_data());
      return std::vector<Tensor>{grad, Tensor()};
    });
  }
  return out;
}

Tensor caption_loss_from_logits(const Tensor& logits_in, const Tensor& labels_in, const Tensor& group_in,
                                CaptionLoss mode, int64_t ignore_index, double normaliser,
                                const CaptionLossInputsChecked* checked_by_caller) {
  constexpr const char* kOp = "caption_loss_from_logits";
  check_rank(kOp, "logits", logits_in, 3);
  if (!(normaliser >= 0.0) || !std::isfinite(normaliser)) {  // also rejects NaN
    Fail(ErrorKind::kInvalidArgument, kOp, ": normaliser must be finite and >= 0 (0 = this batch's own), got ",
         normaliser, " for logits ", logits_in.describe());
  }
  const CheckedLabels checked = check_token_labels(kOp, logits_in, labels_in, ignore_index, checked_by_caller != nullptr);
  check_integer(kOp, "group", group_in);
  check_rank(kOp, "group", group_in, 1);
  check_same_device(kOp, {&logits_in, &group_in});
  const int64_t rows = logits_in.size(0), length = logits_in.size(1);
  if (group_in.size(0) != rows) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": ", group_in.size(0), " group ids for ", rows, " rows of ",
         logits_in.describe());
  }
  const Device device = logits_in.device();
  GroupLayout layout;
  Tensor group;
  if (checked_by_caller != nullptr) {
    const CaptionLossInputsChecked& vouched = *checked_by_caller;
    if (vouched.rows != rows || vouched.length != length || vouched.vocab != logits_in.size(2) || vouched.mode != mode ||
        vouched.ignore_index != ignore_index) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": the caller's check was of ", vouched.rows, " x ", vouched.length,
           " labels over ", vouched.vocab, " tokens (", caption_loss_name(vouched.mode), ", ignore_index ",
           vouched.ignore_index, "), not of these: logits ", logits_in.describe(), ", ", caption_loss_name(mode),
           ", ignore_index ", ignore_index);
    }
    layout.groups = vouched.groups;
    layout.max_group_rows = vouched.max_group_rows;
    group = as_int64(group_in);
  } else {
    // Validation on host copies of the integers (labels: already made by the range check).
    const Tensor host_group =
        (group_in.host_accessible() ? group_in : group_in.to_device(Device::cpu())).to(DType::kI64).contiguous();
    layout = check_groups(kOp, host_group.data<int64_t>(), rows, checked.host_labels.data<int64_t>(), length, mode);
    group = group_in.dtype() == DType::kI64 && group_in.is_contiguous() ? group_in : host_group.to_device(device);
  }
  const Tensor logits = logits_in.contiguous();
  const Tensor& labels = checked.labels;

  kernels::CaptionLossParams p;
  p.rows = rows;
  p.length = length;
  p.vocab = logits.size(2);
  p.groups = layout.groups;
  p.max_group_rows = layout.max_group_rows;
  p.mode = kernel_mode(mode);
  p.ignore_index = ignore_index;
  p.normaliser = normaliser;
  Backend& backend = backend_for(device);
  Tensor log_prob = Tensor::empty({rows, length}, DType::kF32, device);
  Tensor out = Tensor::empty({}, DType::kF32, device);
  Tensor inverse_tokens = Tensor::empty({1}, DType::kF32, device);
  const bool record = should_record({&logits_in});
  const DType act = logits.dtype();  // logits and dlogits: f32 or bf16 activations; the loss is f32

  if (record && mode == CaptionLoss::kMean) {
    // The weights are known up front: one pass writes log p and the gradient for upstream 1.
    Tensor dlogits = Tensor::empty_like(logits);
    backend.caption_loss_mean_fused(p, act, logits.raw_data(), labels.data<int64_t>(), log_prob.data<float>(),
                                    inverse_tokens.data<float>(), dlogits.raw_data());
    backend.caption_loss_combine(p, log_prob.data<float>(), labels.data<int64_t>(), group.data<int64_t>(), nullptr,
                                 out.data<float>(), inverse_tokens.data<float>());
    record_op(kOp, {logits_in, labels_in, group_in}, out, [act, dlogits](const Tensor& dout_in) {
      // The tape calls this once: scale the saved gradient in place (nothing when upstream is 1).
      const Tensor dout = dout_in.contiguous();
      backend_for(dlogits.device())
          .scale_by_device_scalar(dlogits.numel(), act, dout.data<float>(), dlogits.raw_data());
      return std::vector<Tensor>{dlogits, Tensor(), Tensor()};
    });
    return out;
  }
  Tensor lse = Tensor::empty({rows, length}, DType::kF32, device);
  Tensor weight = record ? Tensor::empty({rows, length}, DType::kF32, device) : Tensor();
  backend.caption_loss_log_probs(p, act, logits.raw_data(), labels.data<int64_t>(), log_prob.data<float>(),
                                 lse.data<float>());
  backend.caption_loss_combine(p, log_prob.data<float>(), labels.data<int64_t>(), group.data<int64_t>(),
                               record ? weight.data<float>() : nullptr, out.data<float>(), inverse_tokens.data<float>());
  if (record) {
    record_op(kOp, {logits_in, labels_in, group_in}, out,
              [p, act, logits, labels, lse, weight, inverse_tokens](const Tensor& dout_in) {
                const Tensor dout = dout_in.contiguous();
                Tensor dlogits = Tensor::empty_like(logits);
                backend_for(logits.device())
                    .caption_loss_backward(p, act, logits.raw_data(), labels.data<int64_t>(), lse.data<float>(),
                                           weight.data<float>(), dout.data<float>(), inverse_tokens.data<float>(),
                                           dlogits.raw_data());
                return std::vector<Tensor>{dlogits, Tensor(), Tensor()};
              });
  }
  return out;
}

namespace {

// Labels [rows, length] with one group id per row, as int64 in host memory (read back once when
// they live on a device), or the op's error naming what is wrong.
Tensor host_labels_for_groups(const char* op, const Tensor& labels_in, const std::vector<int64_t>& group) {
  check_integer(op, "labels", labels_in);
  check_rank(op, "labels", labels_in, 2);
  const int64_t rows = labels_in.size(0);
  if (static_cast<int64_t>(group.size()) != rows) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", group.size(), " group ids for ", rows, " rows of labels ",
         labels_in.describe());
  }
  return as_int64(labels_in.host_accessible() ? labels_in : labels_in.to_device(Device::cpu()));
}

}  // namespace

CaptionLossInputsChecked check_caption_loss_inputs(const Tensor& labels_in, const std::vector<int64_t>& group,
                                                   int64_t vocab, CaptionLoss mode, int64_t ignore_index) {
  constexpr const char* kOp = "caption_loss_from_logits";  // its validation, with its errors
  const Tensor host = host_labels_for_groups(kOp, labels_in, group);
  const int64_t rows = host.size(0), length = host.size(1);
  const int64_t* labels = host.data<int64_t>();
  for (int64_t i = 0; i < rows * length; ++i) {
    if (labels[i] == ignore_index) continue;
    if (labels[i] < 0 || labels[i] >= vocab) {
      Fail(ErrorKind::kOutOfRange, kOp, ": label ", labels[i], " at position ", i, " of labels ", labels_in.describe(),
           " is outside [0, ", vocab, ") and is not ignore_index ", ignore_index);
    }
  }
  const GroupLayout layout = check_groups(kOp, group.data(), rows, labels, length, mode);
  CaptionLossInputsChecked checked;
  checked.rows = rows;
  checked.length = length;
  checked.vocab = vocab;
  checked.mode = mode;
  checked.ignore_index = ignore_index;
  checked.groups = layout.groups;
  checked.max_group_rows = layout.max_group_rows;
  return checked;
}

double caption_loss_normaliser(const Tensor& labels_in, const std::vector<int64_t>& group, CaptionLoss mode,
                               int64_t ignore_index) {
  constexpr const char* kOp = "caption_loss_normaliser";
  const Tensor host = host_labels_for_groups(kOp, labels_in, group);
  const int64_t rows = host.size(0), length = host.size(1);
  const int64_t* labels = host.data<int64_t>();
  const GroupLayout layout = check_groups(kOp, group.data(), rows, labels, length, mode);
  // Per group, then summed in id order: the order of the CPU's and the CUDA kernels' sums.
  std::vector<double> counted(static_cast<size_t>(layout.groups), 0.0), members(counted.size(), 0.0);
  std::vector<bool> seen(counted.size(), false);
  for (int64_t r = 0; r < rows; ++r) {
    const size_t g = static_cast<size_t>(group[static_cast<size_t>(r)]);
    members[g] += 1.0;
    // token_mixture: the rows share one target, counted once (from the group's first row).
    if (mode == CaptionLoss::kTokenMixture && seen[g]) continue;
    seen[g] = true;
    for (int64_t t = 0; t < length; ++t) counted[g] += labels[r * length + t] != ignore_index ? 1.0 : 0.0;
  }
  double normaliser = 0.0;
  for (size_t g = 0; g < counted.size(); ++g) {
    normaliser += mode == CaptionLoss::kSequenceMixture ? counted[g] / members[g] : counted[g];
  }
  return normaliser;
}

}  // namespace la3::ops
