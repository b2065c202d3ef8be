// What the multi-tensor kernels share (kernels/reduce.cuh: the sum of squares over many
// buffers; kernels/adamw.cuh: the AdamW step over many tensors). Such a kernel takes a
// fixed-size table of buffers by value (a kernel parameter: no upload, no allocation) in which
// buffer t owns the launch's blocks [first_block[t], first_block[t + 1]); each block looks up
// its buffer and runs as the same block of a launch over that buffer alone would, so the
// numbers are those of one launch per buffer, in a launch per table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/simt/simt.h"
#if !defined(__CUDACC__)
#include "kernels/simt/runtime.h"
#endif

namespace la3::kernels {

// The table entry that owns `block`: the last t < count with first_block[t] <= block
// (first_block is non-decreasing and first_block[0] = 0), by binary search.
__device__ __forceinline__ int table_owner_of_block(const int64_t* first_block, int count, int64_t block) {
  int low = 0, high = count - 1;
  while (low < high) {
    const int middle = (low + high + 1) / 2;
    if (first_block[middle] <= block) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return low;
}

// Under the emulation, the stream-order checker sees a kernel's pointer arguments only, not
// the pointers inside a table passed by value: the launcher declares those here, as read and
// written on the launch's stream just before the launch, so a table kernel is checked like
// one launch per buffer. Nothing under nvcc.
template <typename Launch>
void declare_table_buffers(const Launch& launch, const char* kernel, const std::vector<const void*>& pointers) {
#if defined(__CUDACC__)
  (void)launch;
  (void)kernel;
  (void)pointers;
#else
  std::vector<simt::BufferUse> uses;
  for (size_t i = 0; i < pointers.size(); ++i) {
    if (pointers[i] != nullptr) {
      uses.push_back({pointers[i], simt::Access::kReadWrite, "table pointer " + std::to_string(i)});
    }
  }
  const std::string what = std::string("buffers of the table of ") + kernel;
  if (std::string bad = simt::enqueue_stream_work(static_cast<cudaStream_t>(launch.stream), what, uses);
      !bad.empty()) {
    throw simt::StreamOrderError(bad);
  }
#endif
}

}  // namespace la3::kernels
