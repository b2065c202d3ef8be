#include "engine/ops/softmax.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

Tensor softmax(const Tensor& x_in) {
  constexpr const char* kOp = "softmax";
  check_activation(kOp, "x", x_in);
  if (x_in.rank() < 1) Fail(ErrorKind::kInvalidArgument, kOp, ": x must have a dimension, got ", x_in.describe());
  const Tensor x = x_in.contiguous();
  kernels::SoftmaxParams p;
  p.cols = x.size(-1);
  p.rows = p.cols == 0 ? 0 : x.numel() / p.cols;
  // The probabilities and dx have x's activation type; the row statistics are fp32 inside.
  const DType act = x.dtype();
  Tensor out = Tensor::empty_like(x);
  backend_for(x.device()).softmax_forward(p, act, x.raw_data(), out.raw_data());
  if (should_record({&x_in})) {
    // Backward needs only the output; keep a handle to it (not x).
    const Tensor y = out.view(out.shape());
    record_op(kOp, {x_in}, out, [p, y, act](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      Tensor dx = Tensor::empty_like(y);
      backend_for(y.device()).softmax_backward(p, act, dout.raw_data(), y.raw_data(), dx.raw_data());
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace la3::ops
