#include "engine/ops/op_checks.h"

namespace la3::ops {

void check_f32(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) Fail(ErrorKind::kInvalidArgument, op, ": ", name, " is undefined");
  if (tensor.dtype() != DType::kF32) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", name, " must be f32, got ", tensor.describe());
  }
}

void check_integer(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) Fail(ErrorKind::kInvalidArgument, op, ": ", name, " is undefined");
  if (!is_integer(tensor.dtype())) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", name, " must be i32 or i64, got ", tensor.describe());
  }
}

void check_rank(const char* op, const char* name, const Tensor& tensor, int rank) {
  if (tensor.rank() != rank) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", name, " must have ", rank, " dimensions, got ",
         tensor.describe());
  }
}

void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* tensor : tensors) {
    if (tensor == nullptr || !tensor->defined()) continue;
    if (first == nullptr) {
      first = tensor;
    } else if (!(tensor->device() == first->device())) {
      Fail(ErrorKind::kInvalidArgument, op, ": tensors on different devices: ", first->describe(), " and ",
           tensor->describe());
    }
  }
}

void check_same_shape(const char* op, const char* name_a, const Tensor& a, const char* name_b,
                      const Tensor& b) {
  if (a.shape() != b.shape()) {
    Fail(ErrorKind::kInvalidArgument, op, ": shape mismatch: ", name_a, " is ", a.describe(), " but ",
         name_b, " is ", b.describe());
  }
}

Tensor as_int64(const Tensor& ids) { return ids.to(DType::kI64).contiguous(); }

}  // namespace la3::ops
