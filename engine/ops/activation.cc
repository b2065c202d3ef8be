#include "engine/ops/activation.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

namespace {

using UnaryKernel = void (Backend::*)(int64_t, DType, const void*, void*);
using UnaryBackwardKernel = void (Backend::*)(int64_t, DType, const void*, const void*, void*);

// A pointwise activation whose backward needs only the input x. x, out and dx share x's
// activation type (f32, or bf16 on the CUDA devices).
Tensor unary(const char* op, const Tensor& x_in, UnaryKernel forward, UnaryBackwardKernel backward) {
  check_activation(op, "x", x_in);
  const Tensor x = x_in.contiguous();
  const DType act = x.dtype();
  Tensor out = Tensor::empty_like(x);
  (backend_for(x.device()).*forward)(x.numel(), act, x.raw_data(), out.raw_data());
  if (should_record({&x_in})) {
    record_op(op, {x_in}, out, [x, act, backward](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      Tensor dx = Tensor::empty_like(x);
      (backend_for(x.device()).*backward)(x.numel(), act, dout.raw_data(), x.raw_data(), dx.raw_data());
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace

Tensor relu(const Tensor& x) { return unary("relu", x, &Backend::relu_forward, &Backend::relu_backward); }

Tensor gelu_new(const Tensor& x) {
  return unary("gelu_new", x, &Backend::gelu_new_forward, &Backend::gelu_new_backward);
}

Tensor gated_gelu(const Tensor& gate_in, const Tensor& linear_in) {
  constexpr const char* kOp = "gated_gelu";
  check_activation(kOp, "gate", gate_in);
  check_activation(kOp, "linear", linear_in);
  check_same_dtype(kOp, "gate", gate_in, "linear", linear_in);
  check_same_device(kOp, {&gate_in, &linear_in});
  check_same_shape(kOp, "gate", gate_in, "linear", linear_in);
  const Tensor gate = gate_in.contiguous();
  const Tensor linear = linear_in.contiguous();
  const DType act = gate.dtype();
  Tensor out = Tensor::empty_like(gate);
  backend_for(gate.device()).gated_gelu_forward(gate.numel(), act, gate.raw_data(), linear.raw_data(), out.raw_data());
  if (should_record({&gate_in, &linear_in})) {
    const bool need_gate = gate_in.requires_grad(), need_linear = linear_in.requires_grad();
    record_op(kOp, {gate_in, linear_in}, out, [gate, linear, act, need_gate, need_linear](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      Tensor dgate = need_gate ? Tensor::empty_like(gate) : Tensor();
      Tensor dlinear = need_linear ? Tensor::empty_like(linear) : Tensor();
      backend_for(gate.device())
          .gated_gelu_backward(gate.numel(), act, dout.raw_data(), gate.raw_data(), linear.raw_data(),
                               need_gate ? dgate.raw_data() : nullptr, need_linear ? dlinear.raw_data() : nullptr);
      return std::vector<Tensor>{dgate, dlinear};
    });
  }
  return out;
}

}  // namespace la3::ops
