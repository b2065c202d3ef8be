// Argument checks shared by the ops. Each throws EngineError naming the op, the argument
// and what it got, e.g. "rmsnorm: weight f32[7] on cpu does not match the last dimension 8 of x".
#pragma once

#include <initializer_list>

#include "engine/tensor.h"

namespace la3::ops {

// `tensor` must be defined and f32.
void check_f32(const char* op, const char* name, const Tensor& tensor);
// `tensor` must be defined and an activation type: f32, or bf16 (which only the CUDA devices
// compute with; the CPU backend refuses it by op name).
void check_activation(const char* op, const char* name, const Tensor& tensor);
// a and b must have the same element type.
void check_same_dtype(const char* op, const char* name_a, const Tensor& a, const char* name_b, const Tensor& b);
// `tensor` must be defined and i32 or i64.
void check_integer(const char* op, const char* name, const Tensor& tensor);
// `tensor` must have exactly `rank` dimensions.
void check_rank(const char* op, const char* name, const Tensor& tensor, int rank);
// All defined tensors must be on the same device.
void check_same_device(const char* op, std::initializer_list<const Tensor*> tensors);
// a and b must have the same shape.
void check_same_shape(const char* op, const char* name_a, const Tensor& a, const char* name_b,
                      const Tensor& b);
// Copies an id/label tensor to contiguous int64 (a no-op when it already is).
Tensor as_int64(const Tensor& ids);

// Token labels checked against logits [..., vocab] (f32 or bf16 activations): labels must be integer with the logits'
// leading shape, and each is ignore_index or in [0, vocab) (else OutOfRange naming the label
// and its position). Returns them as contiguous int64 with the count of non-ignored ones.
struct CheckedLabels {
  Tensor labels;  // [rows] view of the labels, int64
  int64_t counted = 0;
  Tensor host_labels;  // the same labels readable on the host (the copy the check made)
};
// range_checked_by_caller: the caller checked the values on the host before the upload, so only
// shapes and types are checked here (nothing is read back; counted stays 0, host_labels undefined).
CheckedLabels check_token_labels(const char* op, const Tensor& logits, const Tensor& labels, int64_t ignore_index,
                                 bool range_checked_by_caller = false);

}  // namespace la3::ops
