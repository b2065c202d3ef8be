#include "engine/ops/dropout.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"
#include "kernels/dropout_key.cuh"

namespace la3::ops {

namespace {

constexpr const char* kOp = "dropout";

// params with x's [rows, positions, width] layout (kernels/dropout_key.cuh), after checking
// that the element keys fit: positions < 2^16, width <= 2^16, global rows < 2^32.
kernels::DropoutParams with_layout(const kernels::DropoutParams& params, const Tensor& x) {
  kernels::DropoutParams keyed = params;
  const int rank = x.rank();
  const int64_t rows = rank == 0 ? 1 : x.size(0);
  keyed.width = rank <= 1 ? 1 : x.size(rank - 1);
  keyed.positions = 1;
  for (int dim = 1; dim + 1 < rank; ++dim) keyed.positions *= x.size(dim);
  if (keyed.positions >= kernels::kDropoutPositionLimit || keyed.width > kernels::kDropoutMaxWidth) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": x ", x.describe(), " is keyed as [rows ", rows, ", positions ",
         keyed.positions, ", width ", keyed.width, "]; the mask needs positions < ", kernels::kDropoutPositionLimit,
         " and width <= ", kernels::kDropoutMaxWidth);
  }
  if (params.row_offset < 0 || params.row_offset > kernels::kDropoutRowLimit - rows) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": row_offset ", params.row_offset, " with the ", rows, " rows of x ",
         x.describe(), " must keep global rows in [0, ", kernels::kDropoutRowLimit, ")");
  }
  return keyed;
}

}  // namespace

Tensor dropout(const Tensor& x_in, const kernels::DropoutParams& params_in, bool training) {
  check_activation(kOp, "x", x_in);
  if (!(params_in.p >= 0.0f && params_in.p < 1.0f)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": probability must be in [0, 1), got ", params_in.p);
  }
  if (!training || params_in.p == 0.0f) return x_in;
  const kernels::DropoutParams params = with_layout(params_in, x_in);
  const Tensor x = x_in.contiguous();
  const DType act = x.dtype();
  Tensor out = Tensor::empty_like(x);
  backend_for(x.device()).dropout_forward(params, x.numel(), act, x.raw_data(), out.raw_data());
  if (should_record({&x_in})) {
    // The mask is a function of (seed, step, stream, element key): backward redraws it, so
    // nothing but the parameters is saved.
    record_op(kOp, {x_in}, out, [params, act](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      Tensor dx = Tensor::empty_like(dout);
      backend_for(dout.device()).dropout_forward(params, dout.numel(), act, dout.raw_data(), dx.raw_data());
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace la3::ops
