#include "engine/tensor.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/backend.h"

namespace la3 {

Storage::Storage(Allocator& allocator, size_t bytes, Device device)
    : allocator_(allocator), data_(allocator.allocate(bytes)), bytes_(bytes), device_(device) {}

Storage::~Storage() { allocator_.deallocate(data_, bytes_); }

namespace {

// Reads element `offset` (in elements) of a host buffer of `dtype` as a double.
double load_as_double(const void* base, DType dtype, int64_t offset) {
  switch (dtype) {
    case DType::kF32: return static_cast<const float*>(base)[offset];
    case DType::kBF16: return bf16_to_float(static_cast<const bf16*>(base)[offset]);
    case DType::kI32: return static_cast<const int32_t*>(base)[offset];
    case DType::kI64: return static_cast<double>(static_cast<const int64_t*>(base)[offset]);
  }
  return 0.0;
}

// Writes `value` converted to `dtype`. Float -> integer truncates toward zero (as torch).
void store_from_double(void* base, DType dtype, int64_t offset, double value) {
  switch (dtype) {
    case DType::kF32: static_cast<float*>(base)[offset] = static_cast<float>(value); return;
    case DType::kBF16:
      static_cast<bf16*>(base)[offset] = float_to_bf16(static_cast<float>(value));
      return;
    case DType::kI32: static_cast<int32_t*>(base)[offset] = static_cast<int32_t>(value); return;
    case DType::kI64: static_cast<int64_t*>(base)[offset] = static_cast<int64_t>(value); return;
  }
}

// Offset (in elements) of the element with row-major index `linear` in a strided layout.
int64_t strided_offset(int64_t linear, const Shape& shape, const Shape& strides) {
  int64_t offset = 0;
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t coordinate = linear % shape[d];
    linear /= shape[d];
    offset += coordinate * strides[d];
  }
  return offset;
}

}  // namespace

// ---- creation ------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t extent : shape) {
    if (extent < 0) {
      Fail(ErrorKind::kInvalidArgument, "empty: negative extent in shape ", shape_string(shape));
    }
  }
  auto impl = std::make_shared<TensorImpl>();
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  impl->storage = std::make_shared<Storage>(allocator_for(device), bytes, device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor tensor = empty(shape, dtype, device);
  tensor.fill(value);
  return tensor;
}

Tensor Tensor::empty_like(const Tensor& other) {
  return empty(other.shape(), other.dtype(), other.device());
}

Tensor Tensor::zeros_like(const Tensor& other) {
  return zeros(other.shape(), other.dtype(), other.device());
}

// ---- metadata ------------------------------------------------------------------------------

const TensorImpl& Tensor::impl() const {
  if (impl_ == nullptr) Fail(ErrorKind::kInvalidArgument, "use of an undefined tensor");
  return *impl_;
}

const Shape& Tensor::shape() const { return impl().shape; }
const Shape& Tensor::strides() const { return impl().strides; }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { return impl().dtype; }
Device Tensor::device() const { return impl().storage->device(); }

int64_t Tensor::size(int dim) const { return shape()[normalize_dim(dim, rank(), "size")]; }

bool Tensor::is_contiguous() const {
  const TensorImpl& self = impl();
  int64_t expected = 1;
  for (size_t d = self.shape.size(); d-- > 0;) {
    if (self.shape[d] != 1 && self.strides[d] != expected) return false;
    expected *= self.shape[d];
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return absl::StrCat(dtype_name(dtype()), shape_string(shape()), " on ", device_name(device()));
}

bool Tensor::host_accessible() const { return impl().storage->host_accessible(); }

void Tensor::check_host_accessible(const char* what) const {
  if (!host_accessible()) {
    Fail(ErrorKind::kInvalidArgument, what, ": tensor ", describe(),
         " is not in host-accessible memory; copy it to the cpu first");
  }
}

void* Tensor::raw_data() const {
  const TensorImpl& self = impl();
  return static_cast<char*>(self.storage->data()) +
         static_cast<size_t>(self.offset) * dtype_size(self.dtype);
}

double Tensor::item(int64_t index) const {
  if (index < 0 || index >= numel()) {
    Fail(ErrorKind::kOutOfRange, "item: index ", index, " outside tensor ", describe());
  }
  const int64_t offset = strided_offset(index, shape(), strides());
  if (host_accessible()) return load_as_double(raw_data(), dtype(), offset);
  // Device memory: fetch the one element (waits for the kernels that produce it).
  alignas(8) unsigned char element[8];
  backend_for(device()).copy_to_host(element, static_cast<const char*>(raw_data()) + offset * dtype_size(dtype()),
                                     dtype_size(dtype()));
  return load_as_double(element, dtype(), 0);
}

// ---- views and copies ----------------------------------------------------------------------

Tensor Tensor::view(Shape new_shape) const {
  const TensorImpl& self = impl();
  if (!is_contiguous()) {
    Fail(ErrorKind::kInvalidArgument, "view: tensor ", describe(),
         " is not contiguous; call contiguous() first");
  }
  int inferred = -1;
  int64_t known = 1;
  for (size_t d = 0; d < new_shape.size(); ++d) {
    if (new_shape[d] == -1) {
      if (inferred >= 0) Fail(ErrorKind::kInvalidArgument, "view: more than one -1 in ", shape_string(new_shape));
      inferred = static_cast<int>(d);
    } else if (new_shape[d] < 0) {
      Fail(ErrorKind::kInvalidArgument, "view: negative extent in ", shape_string(new_shape));
    } else {
      known *= new_shape[d];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || numel() % known != 0) {
      Fail(ErrorKind::kInvalidArgument, "view: cannot infer -1 in ", shape_string(new_shape),
           " for ", describe());
    }
    new_shape[static_cast<size_t>(inferred)] = numel() / known;
  }
  if (shape_numel(new_shape) != numel()) {
    Fail(ErrorKind::kInvalidArgument, "view: shape ", shape_string(new_shape), " has ",
         shape_numel(new_shape), " elements but tensor ", describe(), " has ", numel());
  }
  auto impl_copy = std::make_shared<TensorImpl>();
  impl_copy->storage = self.storage;
  impl_copy->offset = self.offset;
  impl_copy->strides = contiguous_strides(new_shape);
  impl_copy->shape = std::move(new_shape);
  impl_copy->dtype = self.dtype;
  return Tensor(std::move(impl_copy));
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  const TensorImpl& self = impl();
  const int d = normalize_dim(dim, rank(), "narrow");
  if (start < 0 || length < 0 || start + length > self.shape[static_cast<size_t>(d)]) {
    Fail(ErrorKind::kOutOfRange, "narrow: range [", start, ", ", start + length,
         ") of dimension ", d, " is outside tensor ", describe());
  }
  auto impl_copy = std::make_shared<TensorImpl>();
  impl_copy->storage = self.storage;
  impl_copy->offset = self.offset + start * self.strides[static_cast<size_t>(d)];
  impl_copy->shape = self.shape;
  impl_copy->shape[static_cast<size_t>(d)] = length;
  impl_copy->strides = self.strides;
  impl_copy->dtype = self.dtype;
  return Tensor(std::move(impl_copy));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor copy = empty(shape(), dtype(), device());
  copy.copy_from(*this);
  return copy;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor converted = empty(shape(), target, device());
  if (!host_accessible() && is_floating(target) && is_floating(dtype()) && is_contiguous()) {
    // On a device the host cannot read the conversion is a kernel, not a trip through the host.
    backend_for(device()).convert(numel(), dtype(), raw_data(), target, converted.raw_data());
    return converted;
  }
  converted.copy_from(*this);
  return converted;
}

Tensor Tensor::to_device(Device target) const {
  if (target == device()) return *this;
  Tensor moved = empty(shape(), dtype(), target);
  moved.copy_from(*this);
  return moved;
}

Tensor Tensor::to_device_async(Device target) const {
  if (target == device()) return *this;
  const Tensor moved = empty(shape(), dtype(), target);
  if (!host_accessible() || moved.host_accessible()) {
    moved.copy_from(*this);
    return moved;
  }
  const Tensor source = contiguous();  // a copy made here is held like the storage of a view
  backend_for(target).copy_from_host_async(moved.raw_data(), source.raw_data(), source.nbytes(),
                                           source.impl().storage);
  return moved;
}

void Tensor::copy_from(const Tensor& source) const {
  if (source.shape() != shape()) {
    Fail(ErrorKind::kInvalidArgument, "copy_from: source ", source.describe(),
         " does not match destination ", describe());
  }
  if (!host_accessible() || !source.host_accessible()) {
    copy_across_devices(source);
    return;
  }
  const int64_t count = numel();
  if (dtype() == source.dtype() && is_contiguous() && source.is_contiguous()) {
    std::memmove(raw_data(), source.raw_data(), nbytes());
    return;
  }
  // bf16 <-> f32 conversion goes through double exactly (both are representable), so the
  // rounding is the single float_to_bf16 round-to-nearest-even step.
  const void* source_base = source.raw_data();
  void* target_base = raw_data();
  for (int64_t i = 0; i < count; ++i) {
    const double value =
        load_as_double(source_base, source.dtype(), strided_offset(i, source.shape(), source.strides()));
    store_from_double(target_base, dtype(), strided_offset(i, shape(), strides()), value);
  }
}

// One side lives in device memory. Same-dtype contiguous copies are one backend copy; any
// other case (dtype conversion, strided views) is staged through contiguous host tensors.
void Tensor::copy_across_devices(const Tensor& source) const {
  const bool plain = dtype() == source.dtype() && is_contiguous() && source.is_contiguous();
  if (plain) {
    if (nbytes() == 0) return;
    if (!host_accessible() && !source.host_accessible()) {
      if (device() != source.device()) {
        Fail(ErrorKind::kUnimplemented, "copy_from: copies between ", device_name(source.device()), " and ",
             device_name(device()), " go through the cpu");
      }
      backend_for(device()).copy_on_device(raw_data(), source.raw_data(), nbytes());
    } else if (!host_accessible()) {
      backend_for(device()).copy_from_host(raw_data(), source.raw_data(), nbytes());
    } else {
      backend_for(source.device()).copy_to_host(raw_data(), source.raw_data(), nbytes());
    }
    return;
  }
  const Tensor host_source = source.host_accessible() ? source : source.host_image();
  if (host_accessible()) {
    copy_from(host_source);
    return;
  }
  // Read-modify-write of the storage span this view covers, so elements between the view's
  // strided elements keep their values.
  const Tensor image = host_image();
  image.copy_from(host_source);
  const size_t span_bytes = static_cast<size_t>(storage_span()) * dtype_size(dtype());
  backend_for(device()).copy_from_host(raw_data(), image.raw_data(), span_bytes);
}

// Elements of storage from this view's first element to its last (inclusive).
int64_t Tensor::storage_span() const {
  if (numel() == 0) return 0;
  int64_t last = 0;
  for (size_t d = 0; d < shape().size(); ++d) last += (shape()[d] - 1) * strides()[d];
  return last + 1;
}

// A host tensor with this view's shape and strides over a host copy of the storage span it
// covers (for device tensors; a contiguous view gives a contiguous copy).
Tensor Tensor::host_image() const {
  const TensorImpl& self = impl();
  const int64_t span = storage_span();
  const Tensor buffer = empty({span}, dtype(), Device::cpu());
  if (span > 0) {
    backend_for(device()).copy_to_host(buffer.raw_data(), raw_data(), static_cast<size_t>(span) * dtype_size(dtype()));
  }
  auto image = std::make_shared<TensorImpl>();
  image->storage = buffer.impl().storage;
  image->offset = 0;
  image->shape = self.shape;
  image->strides = self.strides;
  image->dtype = self.dtype;
  return Tensor(std::move(image));
}

void Tensor::fill(double value) const {
  if (!host_accessible()) {
    if (is_floating(dtype()) && is_contiguous()) {
      backend_for(device()).fill(numel(), dtype(), static_cast<float>(value), raw_data());
      return;
    }
    const Tensor staged = empty(shape(), dtype(), Device::cpu());
    staged.fill(value);
    copy_from(staged);
    return;
  }
  const int64_t count = numel();
  void* base = raw_data();
  if (is_contiguous() && dtype() == DType::kF32) {
    std::fill_n(static_cast<float*>(base), count, static_cast<float>(value));
    return;
  }
  for (int64_t i = 0; i < count; ++i) store_from_double(base, dtype(), strided_offset(i, shape(), strides()), value);
}

// ---- autograd ------------------------------------------------------------------------------

bool Tensor::requires_grad() const { return impl().requires_grad; }

const Tensor& Tensor::set_requires_grad(bool required) const {
  impl();  // throws on an undefined tensor (required == false would otherwise dereference null)
  if (required && !is_floating(dtype())) {
    Fail(ErrorKind::kInvalidArgument, "set_requires_grad: only floating tensors have gradients, got ",
         describe());
  }
  impl_->requires_grad = required;
  return *this;
}

bool Tensor::is_leaf() const { return impl().is_leaf; }

bool Tensor::sole_owner() const { return impl_ != nullptr && impl_.use_count() == 1 && impl_->storage.use_count() == 1; }

Tensor Tensor::grad() const {
  const TensorImpl& self = impl();
  return self.grad ? Tensor(self.grad) : Tensor();
}

void Tensor::set_grad(const Tensor& grad) const {
  impl();
  if (grad.defined() && grad.shape() != shape()) {
    Fail(ErrorKind::kInvalidArgument, "set_grad: gradient ", grad.describe(), " does not match tensor ",
         describe());
  }
  impl_->grad = grad.impl_;
}

void Tensor::zero_grad() const {
  impl();  // throws on an undefined tensor instead of dereferencing null
  impl_->grad.reset();
}

void Tensor::mark_as_op_output() const {
  impl();
  impl_->requires_grad = true;
  impl_->is_leaf = false;
}

}  // namespace la3
