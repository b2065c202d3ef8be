#include "engine/ops/activation.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

namespace {

using UnaryKernel = void (Backend::*)(int64_t, const float*, float*);
using UnaryBackwardKernel = void (Backend::*)(int64_t, const float*, const float*, float*);

// A pointwise activation whose backward needs only the input x.
Tensor unary(const char* op, const Tensor& x_in, UnaryKernel forward, UnaryBackwardKernel backward) {
  check_f32(op, "x", x_in);
  const Tensor x = x_in.contiguous();
  Tensor out = Tensor::empty_like(x);
  (backend_for(x.device()).*forward)(x.numel(), x.data<float>(), out.data<float>());
  if (should_record({&x_in})) {
    record_op(op, {x_in}, out, [x, backward](const Tensor& dout_in) {
      const Tensor dout = dout_in.contiguous();
      Tensor dx = Tensor::empty_like(x);
      (backend_for(x.device()).*backward)(x.numel(), dout.data<float>(), x.data<float>(), dx.data<float>());
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
  check_f32(kOp, "gate", gate_in);
  check_f32(kOp, "linear", linear_in);
  check_same_device(kOp, {&gate_in, &linear_in});
  check_same_shape(kOp, "gate", gate_in, "linear", linear_in);
  const Tensor gate = gate_in.contiguous();
  const Tensor linear = linear_in.contiguous();
  Tensor out = Tensor::empty_like(gate);
  backend_for(gate.device()).gated_gelu_forward(gate.numel(), gate.data<float>(), linear.data<float>(),
                                                out.data<float>());
  if (should_record({&gate_in, &linear_in})) {
    const bool need_gate = gate_in.requires_grad(), need_linear = linear_in.requires_grad();
    record_op(kOp, {gate_in, linear_in}, out, [gate, linear, need_gate, need_linear](const Tensor& dout_in) {
      const Tensor dout = dout_in.contiguous();
      Tensor dgate = need_gate ? Tensor::empty_like(gate) : Tensor();
      Tensor dlinear = need_linear ? Tensor::empty_like(linear) : Tensor();
      backend_for(gate.device())
          .gated_gelu_backward(gate.numel(), dout.data<float>(), gate.data<float>(), linear.data<float>(),
                               need_gate ? dgate.data<float>() : nullptr,
                               need_linear ? dlinear.data<float>() : nullptr);
      return std::vector<Tensor>{dgate, dlinear};
    });
  }
  return out;
}

}  // namespace la3::ops
