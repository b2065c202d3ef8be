#include "engine/ops/rmsnorm.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

Tensor rmsnorm(const Tensor& x_in, const Tensor& weight_in, float eps) {
  constexpr const char* kOp = "rmsnorm";
  check_f32(kOp, "x", x_in);
  check_f32(kOp, "weight", weight_in);
  check_same_device(kOp, {&x_in, &weight_in});
  check_rank(kOp, "weight", weight_in, 1);
  if (x_in.rank() < 1 || x_in.size(-1) != weight_in.size(0)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": weight ", weight_in.describe(),
         " does not match the last dimension of x ", x_in.describe());
  }
  if (!(eps > 0.0f)) Fail(ErrorKind::kInvalidArgument, kOp, ": eps must be positive, got ", eps);
  const Tensor x = x_in.contiguous();
  const Tensor weight = weight_in.contiguous();
  kernels::RmsNormParams p;
  p.cols = weight.size(0);
  p.rows = p.cols == 0 ? 0 : x.numel() / p.cols;
  p.eps = eps;
  Tensor out = Tensor::empty_like(x);
  Tensor rstd = Tensor::empty({p.rows}, DType::kF32, x.device());  // [rows], saved for backward
  backend_for(x.device()).rmsnorm_forward(p, x.data<float>(), weight.data<float>(), out.data<float>(),
                                          rstd.data<float>());
  if (should_record({&x_in, &weight_in})) {
    const bool need_dweight = weight_in.requires_grad();
    record_op(kOp, {x_in, weight_in}, out, [p, x, weight, rstd, need_dweight](const Tensor& dout_in) {
      const Tensor dout = dout_in.contiguous();
      Tensor dx = Tensor::empty_like(x);
      Tensor dweight = need_dweight ? Tensor::zeros_like(weight) : Tensor();
      backend_for(x.device()).rmsnorm_backward(p, dout.data<float>(), x.data<float>(), weight.data<float>(),
                                               rstd.data<float>(), dx.data<float>(),
                                               need_dweight ? dweight.data<float>() : nullptr);
      return std::vector<Tensor>{dx, dweight};
    });
  }
  return out;
}

}  // namespace la3::ops
