#include "engine/ops/reshape.h"

#include "engine/autograd/tape.h"

namespace la3::ops {

Tensor reshape(const Tensor& x, Shape shape) {
  if (!x.defined()) Fail(ErrorKind::kInvalidArgument, "reshape: input is undefined");
  const Tensor out = x.contiguous().view(std::move(shape));  // a new handle, never x itself
  if (should_record({&x})) {
    const Shape input_shape = x.shape();
    record_op("reshape", {x}, out, [input_shape](const Tensor& dout) {
      return std::vector<Tensor>{dout.contiguous().view(input_shape)};
    });
  }
  return out;
}

}  // namespace la3::ops
