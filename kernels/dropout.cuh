// Inverted dropout (f32) with the shared Philox keying (kernels/dropout_key.cuh): the same
// keep decision as engine/cpu/dropout_cpu.cc for every element.
#pragma once

#include <cstdint>

#include "kernels/dropout_key.cuh"
#include "kernels/launch.h"
#include "kernels/op_params.h"
#include "kernels/philox.cuh"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// Inverted dropout of a contiguous [rows, positions, width] tensor: the same keep decision as
// the CPU backend for every element, keyed by its (global row, position, column).
__global__ void dropout_kernel(DropoutParams p, int64_t count, const float* x, float* out) {
  const float keep_scale = 1.0f / (1.0f - p.p);
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    out[i] = dropout_keep(p.p, p.seed, p.step, p.stream, dropout_key_of_index(p, i)) ? x[i] * keep_scale : 0.0f;
  }
}

// --- launcher (kernels/launch.h) ---------------------------------------------------------------

// `count` must be whole rows of [positions, width] (dropout_layout_fits): the kernel finds each
// element's key by dividing its flat index.
template <typename Launch>
void launch_dropout(const Launch& launch, const DropoutParams& p, int64_t count, const float* x, float* out) {
  launch_pointwise(launch, dropout_kernel, count, p, count, x, out);
}

}  // namespace la3::kernels
