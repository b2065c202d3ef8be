#include "engine/shape.h"

#include "absl/strings/str_join.h"
#include "engine/error.h"

namespace la3 {

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

std::string shape_string(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int normalize_dim(int dim, int rank, const char* op) {
  const int normalized = dim < 0 ? dim + rank : dim;
  if (normalized < 0 || normalized >= rank) {
    Fail(ErrorKind::kInvalidArgument, op, ": dimension ", dim, " is out of range for a tensor of rank ",
         rank);
  }
  return normalized;
}

}  // namespace la3
