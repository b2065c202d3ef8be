#include "engine/ops/sequence_loss.h"

#include <algorithm>
#include <cmath>

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
  kernels::CrossEntropyParams p;
  p.vocab = logits.size(-1);
  p.rows = labels.numel();
  p.ignore_index = ignore_index;
  const int64_t* label_data = labels.data<int64_t>();
  Tensor negative = Tensor::empty(labels.shape(), DType::kF32, logits.device());  // -log p, 0 if ignored
  Tensor row_lse = Tensor::empty({p.rows}, DType::kF32, logits.device());          // saved for backward
  Backend& backend = backend_for(logits.device());
  backend.cross_entropy_forward(p, logits.data<float>(), label_data, negative.data<float>(), row_lse.data<float>());
  Tensor out = Tensor::empty(labels.shape(), DType::kF32, logits.device());
  backend.scale(p.rows, -1.0f, negative.data<float>(), out.data<float>());
  if (should_record({&logits_in})) {
    record_op(kOp, {logits_in, labels_in}, out, [p, logits, labels, row_lse](const Tensor& dout_in) {
      // d log p(y) / dz = onehot(y) - softmax(z): the cross-entropy kernel with weight -g.
      const Tensor dout = dout_in.contiguous();
      Backend& bk = backend_for(logits.device());
      Tensor weights = Tensor::empty({p.rows}, DType::kF32, logits.device());
      bk.scale(p.rows, -1.0f, dout.data<float>(), weights.data<float>());
      Tensor dlogits = Tensor::empty_like(logits);
      bk.cross_entropy_backward(p, logits.data<float>(), labels.data<int64_t>(), row_lse.data<float>(),
                                weights.data<float>(), dlogits.data<float>());
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

// log(sum_j exp(x_j)) in double, stable.
double log_sum_exp(const std::vector<double>& values) {
  double max_value = -INFINITY;
  for (double v : values) max_value = std::max(max_value, v);
  if (max_value == -INFINITY) return -INFINITY;
  double sum = 0.0;
  for (double v : values) sum += std::exp(v - max_value);
  return max_value + std::log(sum);
}

}  // namespace

Tensor caption_loss(const Tensor& log_probs_in, const Tensor& labels_in, const std::vector<int64_t>& group,
                    CaptionLoss mode, int64_t ignore_index) {
  constexpr const char* kOp = "caption_loss";
  check_f32(kOp, "log_probs", log_probs_in);
  check_integer(kOp, "labels", labels_in);
  check_rank(kOp, "log_probs", log_probs_in, 2);
  check_same_shape(kOp, "log_probs", log_probs_in, "labels", labels_in);
  const int64_t rows = log_probs_in.size(0), length = log_probs_in.size(1);
  if (static_cast<int64_t>(group.size()) != rows) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": ", group.size(), " group ids for ", rows, " rows of ",
         log_probs_in.describe());
  }
  int64_t groups = 0;
  for (int64_t g : group) {
    if (g < 0) Fail(ErrorKind::kInvalidArgument, kOp, ": negative group id ", g);
    groups = std::max(groups, g + 1);
  }
  // The small [rows, len] tensors are combined on the host in double (copied there from a
  // GPU device; the gradient goes back to the device).
  const Device device = log_probs_in.device();
  const Tensor log_probs = log_probs_in.to_device(Device::cpu()).contiguous();
  const Tensor labels = as_int64(labels_in).to_device(Device::cpu());
  const float* lp = log_probs.data<float>();
  const int64_t* lab = labels.data<int64_t>();
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(groups));
  for (int64_t r = 0; r < rows; ++r) members[static_cast<size_t>(group[static_cast<size_t>(r)])].push_back(r);
  auto counted = [&](int64_t r, int64_t t) { return lab[r * length + t] != ignore_index; };

  // weight[r * length + t] = d loss_sum / d log_probs[r, t], before the normaliser.
  std::vector<double> weight(static_cast<size_t>(rows * length), 0.0);
  double loss_sum = 0.0, tokens = 0.0;
  for (int64_t g = 0; g < groups; ++g) {
    const std::vector<int64_t>& rows_of_g = members[static_cast<size_t>(g)];
    if (rows_of_g.empty()) Fail(ErrorKind::kInvalidArgument, kOp, ": group ", g, " has no rows");
    const double k_plus_one = static_cast<double>(rows_of_g.size());
    if (mode == CaptionLoss::kMean) {
      for (int64_t r : rows_of_g) {
        for (int64_t t = 0; t < length; ++t) {
          if (!counted(r, t)) continue;
          loss_sum -= lp[r * length + t];
          weight[static_cast<size_t>(r * length + t)] = -1.0;
          tokens += 1.0;
        }
      }
    } else if (mode == CaptionLoss::kTokenMixture) {
      const int64_t first = rows_of_g.front();
      for (int64_t r : rows_of_g) {
        for (int64_t t = 0; t < length; ++t) {
          if (lab[r * length + t] != lab[first * length + t]) {
            Fail(ErrorKind::kInvalidArgument, kOp, ": token_mixture needs one target per group, but rows ", first,
                 " and ", r, " of group ", g, " differ at position ", t);
          }
        }
      }
      for (int64_t t = 0; t < length; ++t) {
        if (!counted(first, t)) continue;
        std::vector<double> values;
        for (int64_t r : rows_of_g) values.push_back(lp[r * length + t]);
        const double mixture = log_sum_exp(values) - std::log(k_plus_one);  // log p_t
        loss_sum -= mixture;
        tokens += 1.0;
        // d(-log p_t)/d log p_j = -p_j / sum_i p_i = -softmax_j(values).
        for (size_t j = 0; j < rows_of_g.size(); ++j) {
          weight[static_cast<size_t>(rows_of_g[j] * length + t)] = -std::exp(values[j] - (mixture + std::log(k_plus_one)));
        }
      }
    } else {
      std::vector<double> scores;  // s_j
      double length_sum = 0.0;
      for (int64_t r : rows_of_g) {
        double s = 0.0;
        for (int64_t t = 0; t < length; ++t) {
          if (!counted(r, t)) continue;
          s += lp[r * length + t];
          length_sum += 1.0;
        }
        scores.push_back(s);
      }
      const double total = log_sum_exp(scores);
      loss_sum -= total - std::log(k_plus_one);
      tokens += length_sum / k_plus_one;
      for (size_t j = 0; j < rows_of_g.size(); ++j) {
        const double posterior = std::exp(scores[j] - total);  // softmax_j(s)
        const int64_t r = rows_of_g[j];
        for (int64_t t = 0; t < length; ++t) {
          if (counted(r, t)) weight[static_cast<size_t>(r * length + t)] = -posterior;
        }
      }
    }
  }
  const double normaliser = tokens > 0.0 ? tokens : 1.0;
  Tensor out = Tensor::scalar(tokens > 0.0 ? static_cast<float>(loss_sum / normaliser) : 0.0f).to_device(device);
  if (should_record({&log_probs_in})) {
    record_op(kOp, {log_probs_in, labels_in}, out,
              [weight = std::move(weight), normaliser, rows, length, device](const Tensor& dout) {
                const double upstream = dout.item(0) / normaliser;
                Tensor grad = Tensor::empty({rows, length}, DType::kF32);
                float* g = grad.data<float>();
                for (size_t i = 0; i < weight.size(); ++i) g[i] = static_cast<float>(upstream * weight[i]);
                return std::vector<Tensor>{grad.to_device(device), Tensor()};
              });
  }
  return out;
}

}  // namespace la3::ops
