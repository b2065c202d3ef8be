#include "engine/ops/dropout.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

Tensor dropout(const Tensor& x_in, const kernels::DropoutParams& params, bool training) {
  constexpr const char* kOp = "dropout";
  check_f32(kOp, "x", x_in);
  if (!(params.p >= 0.0f && params.p < 1.0f)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": probability must be in [0, 1), got ", params.p);
  }
  if (!training || params.p == 0.0f) return x_in;
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty_like(x);
  backend_for(x.device()).dropout_forward(params, x.numel(), x.data<float>(), out.data<float>());
  if (should_record({&x_in})) {
    // The mask is a function of (seed, step, stream, index): backward redraws it, so nothing
    // but the parameters is saved.
    record_op(kOp, {x_in}, out, [params](const Tensor& dout_in) {
      const Tensor dout = dout_in.contiguous();
      Tensor dx = Tensor::empty_like(dout);
      backend_for(dout.device()).dropout_forward(params, dout.numel(), dout.data<float>(), dx.data<float>());
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace la3::ops
