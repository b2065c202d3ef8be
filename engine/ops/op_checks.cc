#include "engine/ops/op_checks.h"

namespace la3::ops {

void check_f32(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) Fail(ErrorKind::kInvalidArgument, op, ": ", name, " is undefined");
  if (tensor.dtype() != DType::kF32) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", name, " must be f32, got ", tensor.describe());
  }
}

void check_activation(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.defined()) Fail(ErrorKind::kInvalidArgument, op, ": ", name, " is undefined");
  if (!is_floating(tensor.dtype())) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", name, " must be f32 or bf16, got ", tensor.describe());
  }
}

void check_same_dtype(const char* op, const char* name_a, const Tensor& a, const char* name_b, const Tensor& b) {
  if (a.dtype() != b.dtype()) {
    Fail(ErrorKind::kInvalidArgument, op, ": ", name_a, " ", a.describe(), " and ", name_b, " ", b.describe(),
         " must have the same element type (convert one with Tensor::to)");
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

CheckedLabels check_token_labels(const char* op, const Tensor& logits, const Tensor& labels, int64_t ignore_index,
                                 bool range_checked_by_caller) {
  check_activation(op, "logits", logits);
  check_integer(op, "labels", labels);
  check_same_device(op, {&logits, &labels});
  const Shape expected(logits.shape().begin(), logits.shape().end() - (logits.rank() > 0 ? 1 : 0));
  if (logits.rank() < 1 || labels.shape() != expected) {
    Fail(ErrorKind::kInvalidArgument, op, ": labels ", labels.describe(), " do not match logits ", logits.describe(),
         " (expected labels of shape ", shape_string(expected), ")");
  }
  CheckedLabels checked{as_int64(labels), 0, Tensor()};
  if (range_checked_by_caller) return checked;
  const int64_t vocab = logits.size(-1);
  // Labels on a GPU device are checked on a host copy (one [rows] copy per loss).
  checked.host_labels = checked.labels.host_accessible() ? checked.labels : checked.labels.to_device(Device::cpu());
  const Tensor& host_labels = checked.host_labels;
  const int64_t* data = host_labels.data<int64_t>();
  for (int64_t row = 0; row < checked.labels.numel(); ++row) {
    const int64_t label = data[row];
    if (label == ignore_index) continue;
    if (label < 0 || label >= vocab) {
      Fail(ErrorKind::kOutOfRange, op, ": label ", label, " at position ", row, " of labels ", labels.describe(),
           " is outside [0, ", vocab, ") and is not ignore_index ", ignore_index);
    }
    ++checked.counted;
  }
  return checked;
}

}  // namespace la3::ops
