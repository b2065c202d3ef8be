#include "engine/ops/elementwise.h"

#include <algorithm>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

namespace {

// b must equal a's shape or a suffix of it; returns the broadcast parameters.
kernels::BinaryParams broadcast_params(const char* op, const Tensor& a, const Tensor& b) {
  check_activation(op, "a", a);
  check_activation(op, "b", b);
  check_same_dtype(op, "a", a, "b", b);
  check_same_device(op, {&a, &b});
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const bool suffix = sb.size() <= sa.size() && std::equal(sb.begin(), sb.end(), sa.end() - static_cast<long>(sb.size()));
  if (!suffix) {
    Fail(ErrorKind::kInvalidArgument, op, ": cannot broadcast b ", b.describe(), " to a ", a.describe(),
         " (b's shape must equal a's or be a suffix of it)");
  }
  kernels::BinaryParams p;
  p.count = a.numel();
  p.b_period = b.numel();
  if (p.b_period == 0 && p.count != 0) {
    Fail(ErrorKind::kInvalidArgument, op, ": b ", b.describe(), " is empty");
  }
  return p;
}

enum class BinaryKind { kAdd, kMul };

Tensor binary(BinaryKind kind, const Tensor& a_in, const Tensor& b_in) {
  const char* op = kind == BinaryKind::kAdd ? "add" : "mul";
  const kernels::BinaryParams p = broadcast_params(op, a_in, b_in);
  const Tensor a = a_in.contiguous();
  const Tensor b = b_in.contiguous();
  Tensor out = Tensor::empty_like(a);
  Backend& backend = backend_for(a.device());
  const DType act = a.dtype();
  if (kind == BinaryKind::kAdd) {
    backend.add_forward(p, act, a.raw_data(), b.raw_data(), out.raw_data());
  } else {
    backend.mul_forward(p, act, a.raw_data(), b.raw_data(), out.raw_data());
  }
  if (should_record({&a_in, &b_in})) {
    const bool need_da = a_in.requires_grad(), need_db = b_in.requires_grad();
    record_op(op, {a_in, b_in}, out, [kind, p, a, b, act, need_da, need_db](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      Backend& bk = backend_for(dout.device());
      Tensor da = need_da ? Tensor::empty_like(a) : Tensor();
      Tensor db = need_db ? Tensor::zeros_like(b) : Tensor();
      void* da_ptr = need_da ? da.raw_data() : nullptr;
      void* db_ptr = need_db ? db.raw_data() : nullptr;
      if (kind == BinaryKind::kAdd) {
        bk.add_backward(p, act, dout.raw_data(), da_ptr, db_ptr);
      } else {
        bk.mul_backward(p, act, dout.raw_data(), a.raw_data(), b.raw_data(), da_ptr, db_ptr);
      }
      return std::vector<Tensor>{da, db};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryKind::kAdd, a, b); }

Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryKind::kMul, a, b); }

Tensor scale(const Tensor& x_in, float alpha) {
  check_activation("scale", "x", x_in);
  const Tensor x = x_in.contiguous();
  const DType act = x.dtype();
  Tensor out = Tensor::empty_like(x);
  backend_for(x.device()).scale(x.numel(), act, alpha, x.raw_data(), out.raw_data());
  if (should_record({&x_in})) {
    record_op("scale", {x_in}, out, [alpha, act](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      Tensor dx = Tensor::empty_like(dout);
      backend_for(dout.device()).scale(dout.numel(), act, alpha, dout.raw_data(), dx.raw_data());
      return std::vector<Tensor>{dx};
    });
  }
  return out;
}

}  // namespace la3::ops
