#include "engine/optim/adamw.h"

#include <cmath>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3 {

AdamW::AdamW(std::vector<Tensor> parameters, const AdamWOptions& options)
    : parameters_(std::move(parameters)), options_(options) {
  if (!(options_.lr >= 0.0)) Fail(ErrorKind::kInvalidArgument, "AdamW: lr must be >= 0, got ", options_.lr);
  if (!(options_.beta1 >= 0.0 && options_.beta1 < 1.0) || !(options_.beta2 >= 0.0 && options_.beta2 < 1.0)) {
    Fail(ErrorKind::kInvalidArgument, "AdamW: betas must be in [0, 1), got (", options_.beta1, ", ",
         options_.beta2, ")");
  }
  if (!(options_.eps >= 0.0)) Fail(ErrorKind::kInvalidArgument, "AdamW: eps must be >= 0, got ", options_.eps);
  if (!(options_.weight_decay >= 0.0)) {
    Fail(ErrorKind::kInvalidArgument, "AdamW: weight_decay must be >= 0, got ", options_.weight_decay);
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& parameter = parameters_[i];
    ops::check_f32("AdamW", "parameter", parameter);
    if (!parameter.is_contiguous()) {
      Fail(ErrorKind::kInvalidArgument, "AdamW: parameter ", i, " ", parameter.describe(), " is not contiguous");
    }
    exp_avg_.push_back(Tensor::zeros(parameter.shape(), DType::kF32, parameter.device()));
    exp_avg_sq_.push_back(Tensor::zeros(parameter.shape(), DType::kF32, parameter.device()));
    if (options_.bf16_weight_copies) {
      bf16_copies_.push_back(Tensor::empty(parameter.shape(), DType::kBF16, parameter.device()));
    }
  }
  refresh_bf16_copies();
  for (size_t i = 0; i < bf16_copies_.size(); ++i) {
    backend_for(parameters_[i].device())
        .register_bf16_copy(parameters_[i].data<float>(), bf16_bits(bf16_copies_[i]), parameters_[i].numel());
  }
}

AdamW::~AdamW() {
  for (size_t i = 0; i < bf16_copies_.size(); ++i) {
    backend_for(parameters_[i].device()).unregister_bf16_copy(parameters_[i].data<float>());
  }
}

void AdamW::refresh_bf16_copies() {
  for (size_t i = 0; i < bf16_copies_.size(); ++i) {
    backend_for(parameters_[i].device())
        .convert(parameters_[i].numel(), DType::kF32, parameters_[i].data<float>(), DType::kBF16, bf16_copies_[i].raw_data());
  }
}

void AdamW::step(float grad_scale) {
  ++step_;
  kernels::AdamWParams p;
  p.grad_scale = grad_scale;
  p.lr = options_.lr;
  p.beta1 = options_.beta1;
  p.beta2 = options_.beta2;
  p.eps = options_.eps;
  p.weight_decay = options_.weight_decay;
  p.step = step_;
  // Every tensor of a device in one adamw_step_multi call (a few launches on a GPU instead of
  // one per tensor); `dense_grads` keeps contiguous copies alive until then.
  std::map<std::pair<int, int>, std::pair<Device, std::vector<kernels::AdamWTensor>>> by_device;
  std::vector<Tensor> dense_grads;
  dense_grads.reserve(parameters_.size());
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& parameter = parameters_[i];
    const Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    if (grad.shape() != parameter.shape() || grad.dtype() != DType::kF32) {
      Fail(ErrorKind::kInvalidArgument, "AdamW: gradient ", grad.describe(), " of parameter ", i, " ",
           parameter.describe(), " has the wrong shape or dtype");
    }
    if (grad.device() != parameter.device()) {
      Fail(ErrorKind::kInvalidArgument, "AdamW: gradient ", grad.describe(), " of parameter ", i, " ",
           parameter.describe(), " is on another device");
    }
    dense_grads.push_back(grad.contiguous());
    kernels::AdamWTensor tensor;
    tensor.param = parameter.data<float>();
    tensor.grad = dense_grads.back().data<float>();
    tensor.exp_avg = exp_avg_[i].data<float>();
    tensor.exp_avg_sq = exp_avg_sq_[i].data<float>();
    tensor.param_bf16 = bf16_copies_.empty() ? nullptr : bf16_bits(bf16_copies_[i]);
    tensor.count = parameter.numel();
    auto& entry = by_device[{static_cast<int>(parameter.device().type), parameter.device().index}];
    entry.first = parameter.device();
    entry.second.push_back(tensor);
  }
  for (const auto& [key, entry] : by_device) {
    backend_for(entry.first).adamw_step_multi(p, entry.second.data(), static_cast<int64_t>(entry.second.size()));
  }
}

absl::Status AdamW::restore_state(int64_t steps_taken, const std::vector<Tensor>& exp_avg,
                                  const std::vector<Tensor>& exp_avg_sq) {
  if (steps_taken < 0) return absl::InvalidArgumentError("AdamW state: negative step count");
  if (exp_avg.size() != parameters_.size() || exp_avg_sq.size() != parameters_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("AdamW state has ", exp_avg.size(), "/", exp_avg_sq.size(),
                                                   " moment tensors for ", parameters_.size(), " parameters"));
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    if (exp_avg[i].shape() != parameters_[i].shape() || exp_avg_sq[i].shape() != parameters_[i].shape()) {
      return absl::InvalidArgumentError(absl::StrCat("AdamW state: moments of parameter ", i, " are ",
                                                     exp_avg[i].describe(), " and ", exp_avg_sq[i].describe(),
                                                     " but the parameter is ", parameters_[i].describe()));
    }
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    exp_avg_[i].copy_from(exp_avg[i]);
    exp_avg_sq_[i].copy_from(exp_avg_sq[i]);
  }
  step_ = steps_taken;
  refresh_bf16_copies();
  return absl::OkStatus();
}

void AdamW::zero_grad() {
  for (const Tensor& parameter : parameters_) parameter.zero_grad();
}

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  // One reduction per device over all its gradients (one host synchronisation on a GPU).
  std::map<std::pair<int, int>, std::pair<Device, std::vector<Backend::Span>>> by_device;
  std::vector<Tensor> dense_grads;  // keeps contiguous copies alive until reduced
  dense_grads.reserve(parameters.size());
  for (const Tensor& parameter : parameters) {
    const Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    dense_grads.push_back(grad.contiguous());
    const Tensor& dense = dense_grads.back();
    auto& entry = by_device[{static_cast<int>(dense.device().type), dense.device().index}];
    entry.first = dense.device();
    entry.second.push_back(Backend::Span{dense.data<float>(), dense.numel()});
  }
  double sum_squares = 0.0;
  for (const auto& [key, entry] : by_device) sum_squares += backend_for(entry.first).sum_of_squares(entry.second);
  const double norm = std::sqrt(sum_squares);
  // torch: clip_coef = max_norm / (total_norm + 1e-6), applied when < 1.
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1.0) {
    for (const Tensor& parameter : parameters) {
      const Tensor grad = parameter.grad();
      if (!grad.defined()) continue;
      backend_for(grad.device()).scale(grad.numel(), DType::kF32, static_cast<float>(coefficient), grad.data<float>(),
                                       grad.data<float>());
    }
  }
  return norm;
}

}  // namespace la3
