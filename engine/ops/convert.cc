#include "engine/ops/convert.h"

#include "engine/autograd/tape.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

Tensor convert(const Tensor& x, DType dtype) {
  check_activation("convert", "x", x);
  if (!is_floating(dtype)) {
    Fail(ErrorKind::kInvalidArgument, "convert: the target type must be f32 or bf16, got ", dtype_name(dtype));
  }
  if (x.dtype() == dtype) return x;
  const Tensor out = x.contiguous().to(dtype);
  if (should_record({&x})) {
    const DType input_type = x.dtype();
    record_op("convert", {x}, out, [input_type](const Tensor& dout) {
      return std::vector<Tensor>{dout.contiguous().to(input_type)};
    });
  }
  return out;
}

}  // namespace la3::ops
