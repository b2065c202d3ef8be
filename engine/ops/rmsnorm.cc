#include "engine/ops/rmsnorm.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/dtype.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {
namespace {

kernels::RmsNormParams checked_params(const char* op, const Tensor& x, const Tensor& weight, float eps) {
  check_f32(op, "weight", weight);
  check_same_device(op, {&x, &weight});
  check_rank(op, "weight", weight, 1);
  if (x.rank() < 1 || x.size(-1) != weight.size(0)) {
    Fail(ErrorKind::kInvalidArgument, op, ": weight ", weight.describe(), " does not match the last dimension of x ",
         x.describe());
  }
  if (!(eps > 0.0f)) Fail(ErrorKind::kInvalidArgument, op, ": eps must be positive, got ", eps);
  kernels::RmsNormParams p;
  p.cols = weight.size(0);
  p.rows = p.cols == 0 ? 0 : x.numel() / p.cols;
  p.eps = eps;
  return p;
}

// Records `normed` = rmsnorm(x, weight) on the tape (x is what was normalised). dx has x's
// activation type; dweight is f32.
void record_rmsnorm(const Tensor& x_in, const Tensor& weight_in, const Tensor& x, const Tensor& weight,
                    const Tensor& rstd, const kernels::RmsNormParams& p, const Tensor& normed) {
  if (!should_record({&x_in, &weight_in})) return;
  const bool need_dweight = weight_in.requires_grad();
  const DType act = x.dtype();
  record_op("rmsnorm", {x_in, weight_in}, normed, [p, x, weight, rstd, act, need_dweight](const Tensor& dout_in) {
    const Tensor dout = dout_in.to(act).contiguous();
    Tensor dx = Tensor::empty_like(x);
    // dweight accumulates: into the parameter's gradient when it has one, else a zeroed buffer.
    const Tensor into = need_dweight ? leaf_gradient_to_accumulate_into(weight) : Tensor();
    const Tensor dweight = need_dweight && !into.defined() ? Tensor::zeros_like(weight) : Tensor();
    float* dweight_data = into.defined() ? into.data<float>() : dweight.defined() ? dweight.data<float>() : nullptr;
    backend_for(x.device()).rmsnorm_backward(p, act, dout.raw_data(), x.raw_data(), weight.data<float>(),
                                             rstd.data<float>(), dx.raw_data(), dweight_data);
    return std::vector<Tensor>{dx, dweight};
  });
}

}  // namespace

Tensor rmsnorm(const Tensor& x_in, const Tensor& weight_in, float eps) {
  constexpr const char* kOp = "rmsnorm";
  check_activation(kOp, "x", x_in);
  const kernels::RmsNormParams p = checked_params(kOp, x_in, weight_in, eps);
  const Tensor x = x_in.contiguous();
  const Tensor weight = weight_in.contiguous();
  Tensor out = Tensor::empty_like(x);
  Tensor rstd = Tensor::empty({p.rows}, DType::kF32, x.device());  // [rows], saved for backward
  backend_for(x.device())
      .rmsnorm_forward(p, x.dtype(), x.raw_data(), weight.data<float>(), out.raw_data(), rstd.data<float>());
  record_rmsnorm(x_in, weight_in, x, weight, rstd, p, out);
  return out;
}

AddRmsNorm add_rmsnorm(const Tensor& residual_in, const Tensor& branch_in, const Tensor& weight_in, float eps) {
  constexpr const char* kOp = "add_rmsnorm";
  check_activation(kOp, "residual", residual_in);
  check_activation(kOp, "branch", branch_in);
  check_same_dtype(kOp, "residual", residual_in, "branch", branch_in);
  check_same_device(kOp, {&residual_in, &branch_in});
  check_same_shape(kOp, "residual", residual_in, "branch", branch_in);
  const kernels::RmsNormParams p = checked_params(kOp, residual_in, weight_in, eps);
  const Tensor residual = residual_in.contiguous();
  const Tensor branch = branch_in.contiguous();
  const Tensor weight = weight_in.contiguous();
  AddRmsNorm result{Tensor::empty_like(residual), Tensor::empty_like(residual)};
  Tensor rstd = Tensor::empty({p.rows}, DType::kF32, residual.device());
  backend_for(residual.device())
      .add_rmsnorm_forward(p, residual.dtype(), residual.raw_data(), branch.raw_data(), weight.data<float>(),
                           result.sum.raw_data(), result.normed.raw_data(), rstd.data<float>());
  // Two tape nodes, as if the ops had run apart: the add (its gradient passes through to both
  // inputs) and the norm of the sum. The sum's gradient is the norm's dx plus whatever the
  // later residual stream sends back, which the tape accumulates.
  if (should_record({&residual_in, &branch_in})) {
    record_op("add", {residual_in, branch_in}, result.sum,
              [](const Tensor& dout) { return std::vector<Tensor>{dout, dout}; });
  }
  record_rmsnorm(result.sum, weight_in, result.sum, weight, rstd, p, result.normed);
  return result;
}

}  // namespace la3::ops
