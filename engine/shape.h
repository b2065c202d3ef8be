// Tensor shapes: a list of non-negative extents, row-major (the last dimension is contiguous).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace la3 {

using Shape = std::vector<int64_t>;

// Product of the extents (1 for a scalar, i.e. an empty shape).
int64_t shape_numel(const Shape& shape);

// Row-major strides in elements.
Shape contiguous_strides(const Shape& shape);

// "[2, 3, 4]".
std::string shape_string(const Shape& shape);

// Maps a possibly negative dimension index onto [0, rank); throws EngineError naming `op`
// when it is out of range.
int normalize_dim(int dim, int rank, const char* op);

}  // namespace la3
