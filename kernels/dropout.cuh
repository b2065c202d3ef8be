// Inverted dropout on f32 or bf16 activations with the shared Philox keying
// (kernels/dropout_key.cuh): the same keep decision as engine/cpu/dropout_cpu.cc for every
// element, whatever the activation type (the mask depends on the Philox key only).
#pragma once

#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/dropout_key.cuh"
#include "kernels/launch.h"
#include "kernels/op_params.h"
#include "kernels/philox.cuh"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// Inverted dropout of a contiguous [rows, positions, width] tensor: the same keep decision as
// the CPU backend for every element, keyed by its (global row, position, column). T is the
// activation storage (float or uint16_t bf16 bits): the product is fp32, rounded once.
template <typename T>
__global__ void dropout_kernel(DropoutParams p, int64_t count, const T* x, T* out) {
  const float keep_scale = 1.0f / (1.0f - p.p);
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const bool keep = dropout_keep(p.p, p.seed, p.step, p.stream, dropout_key_of_index(p, i));
    store_act(out, i, keep ? load_act(x, i) * keep_scale : 0.0f);
  }
}

// --- launcher (kernels/launch.h) ---------------------------------------------------------------

// `count` must be whole rows of [positions, width] (dropout_layout_fits): the kernel finds each
// element's key by dividing its flat index.
template <typename Launch, typename T>
void launch_dropout(const Launch& launch, const DropoutParams& p, int64_t count, const T* x, T* out) {
  launch_pointwise(launch, dropout_kernel<T>, count, p, count, x, out);
}

}  // namespace la3::kernels
