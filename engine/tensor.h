// Tensor: a typed, shaped view of device memory, plus the autograd bookkeeping (a gradient
// slot and whether it is a leaf). Copying a Tensor copies a handle: both refer to the same
// data, like torch.Tensor. Views (view/reshape of contiguous data, narrow) share storage.
// const applies to the handle, not the elements: a const Tensor& can still be written
// through (data<T>(), fill, copy_from), as a const std::span can.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/allocator.h"
#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/error.h"
#include "engine/shape.h"

namespace la3 {

// A block of device memory owned jointly by every tensor that views it.
class Storage {
 public:
  Storage(Allocator& allocator, size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool host_accessible() const { return allocator_.host_accessible(); }

 private:
  Allocator& allocator_;
  void* data_;
  size_t bytes_;
  Device device_;
};

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no storage); defined() is false

  // --- creation -------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::kF32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::kF32,
                     Device device = Device::cpu());
  // Copies `values` (row-major; size must equal the shape's element count).
  template <typename T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values,
                            Device device = Device::cpu());
  static Tensor scalar(float value) { return from_vector<float>({}, {value}); }
  static Tensor empty_like(const Tensor& other);
  static Tensor zeros_like(const Tensor& other);

  // --- metadata -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int rank() const { return static_cast<int>(shape().size()); }
  int64_t size(int dim) const;  // negative dims count from the end
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  // True when the CPU can read the data directly (cpu, cuda-emu).
  bool host_accessible() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  // "f32[2, 3] on cpu".
  std::string describe() const;
  // True when both handles refer to the same tensor object (not merely equal values).
  bool same(const Tensor& other) const { return impl_ == other.impl_; }
  // An address naming this tensor object (equal exactly when same()), for hashing.
  const void* identity() const { return impl_.get(); }
  // True when this handle is the only one to this tensor and no other tensor (a view, a
  // gradient slot) shares its storage: the memory can be taken over without a copy.
  bool sole_owner() const;

  // --- data access (host-accessible devices only) ------------------------------------------
  // Typed pointer to the first element; throws when T does not match dtype().
  template <typename T> T* data() const;
  void* raw_data() const;
  template <typename T> std::vector<T> to_vector() const;
  // Reads element `index` (row-major over the logical shape) of any dtype as a double.
  double item(int64_t index = 0) const;

  // --- views and copies -----------------------------------------------------------------
  // Same data, new shape (one extent may be -1). Requires contiguous data.
  Tensor view(Shape shape) const;
  // Elements [start, start + length) of dimension `dim`; shares storage, may be strided.
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  // This tensor if contiguous, else a contiguous copy.
  Tensor contiguous() const;
  Tensor clone() const;
  // Element type conversion (f32 <-> bf16 round-to-nearest-even, integer <-> float).
  Tensor to(DType dtype) const;
  // A copy on `device` (this tensor itself when it is already there). Host-accessible
  // devices only for now (cpu, cuda-emu); the cuda device will copy through its runtime.
  Tensor to_device(Device device) const;
  // to_device without waiting for a host-to-device copy (the other directions are to_device):
  // the copy is queued on the device's backend, which holds this tensor's host storage until
  // its next synchronisation. The storage must not be written until then (a batch's tensors,
  // never written after collation, upload this way: one wait per step instead of one per copy).
  Tensor to_device_async(Device device) const;
  // Copies `source` (same shape, any strides, any dtype convertible) into this tensor.
  void copy_from(const Tensor& source) const;
  void fill(double value) const;

  // --- autograd -------------------------------------------------------------------------
  bool requires_grad() const;
  // Marks a leaf (a parameter) as wanting a gradient. Returns *this for chaining.
  const Tensor& set_requires_grad(bool required) const;
  bool is_leaf() const;
  // The accumulated gradient (undefined until a backward pass reaches this tensor).
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  void zero_grad() const;

  // Used by the autograd tape only.
  void mark_as_op_output() const;

 private:
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  const TensorImpl& impl() const;
  void check_host_accessible(const char* what) const;
  void copy_across_devices(const Tensor& source) const;
  Tensor host_image() const;
  int64_t storage_span() const;

  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements, into storage
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::kF32;
  bool requires_grad = false;
  bool is_leaf = true;
  std::shared_ptr<TensorImpl> grad;
};

// ---- template definitions ----------------------------------------------------------------

template <typename T>
T* Tensor::data() const {
  if (!defined()) Fail(ErrorKind::kInvalidArgument, "data(): the tensor is undefined");
  if (dtype_of<T>::value != dtype()) {
    Fail(ErrorKind::kInvalidArgument, "data(): tensor ", describe(), " read as ",
         dtype_name(dtype_of<T>::value));
  }
  return static_cast<T*>(raw_data());
}

template <typename T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values, Device device) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape)) {
    Fail(ErrorKind::kInvalidArgument, "from_vector: ", values.size(), " values for shape ",
         shape_string(shape), " (", shape_numel(shape), " elements)");
  }
  Tensor tensor = empty(shape, dtype_of<T>::value, Device::cpu());
  std::copy(values.begin(), values.end(), tensor.data<T>());
  return tensor.to_device(device);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  const Tensor dense = host_accessible() ? contiguous() : to_device(Device::cpu());
  dense.check_host_accessible("to_vector");
  const T* begin = dense.data<T>();
  return std::vector<T>(begin, begin + dense.numel());
}

// The storage of a bf16 tensor as the backends take it: uint16_t bits (engine/dtype.h's bf16).
inline uint16_t* bf16_bits(const Tensor& tensor) { return reinterpret_cast<uint16_t*>(tensor.data<bf16>()); }

}  // namespace la3
