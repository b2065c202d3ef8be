// Embedding gather and scatter-add (f32 table, int64 ids, f32 or bf16 activations): one block per id, threads over the
// dimension. The CUDA counterpart of engine/cpu/embedding_cpu.cc.
#pragma once

#include <cstdint>

#include "kernels/bf16.cuh"
#include "kernels/op_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// Embedding gather: one block per id, threads over the dimension. The table is f32 (a weight);
// out is of the activation type T (float, or uint16_t bf16 bits: one rounding per element).
template <typename T>
__global__ void embedding_forward_kernel(EmbeddingParams p, const int64_t* ids, const float* table, T* out) {
  const int64_t i = blockIdx.x;
  const float* row = table + ids[i] * p.dim;
  for (int64_t c = threadIdx.x; c < p.dim; c += blockDim.x) store_act(out, i * p.dim + c, row[c]);
}

// Scatter-add of the gradient rows (of the activation type T) into the f32 table gradient.
// Repeated ids race, so the sum uses atomics (its order, and so the last bits, may vary between
// runs on a GPU).
template <typename T>
__global__ void embedding_backward_kernel(EmbeddingParams p, const int64_t* ids, const T* dout, float* dtable) {
  const int64_t i = blockIdx.x;
  float* row = dtable + ids[i] * p.dim;
  for (int64_t c = threadIdx.x; c < p.dim; c += blockDim.x) atomicAdd(&row[c], load_act(dout, i * p.dim + c));
}

// --- launchers (kernels/launch.h): one block per id --------------------------------------------

constexpr unsigned int kEmbeddingThreads = 64;

template <typename Launch, typename T>
void launch_embedding_forward(const Launch& launch, const EmbeddingParams& p, const int64_t* ids, const float* table,
                              T* out) {
  if (p.count > 0) {
    launch(embedding_forward_kernel<T>, dim3(static_cast<unsigned>(p.count)), dim3(kEmbeddingThreads), 0, p, ids,
           table, out);
  }
}
template <typename Launch, typename T>
void launch_embedding_backward(const Launch& launch, const EmbeddingParams& p, const int64_t* ids, const T* dout,
                               float* dtable) {
  if (p.count > 0) {
    launch(embedding_backward_kernel<T>, dim3(static_cast<unsigned>(p.count)), dim3(kEmbeddingThreads), 0, p, ids,
           dout, dtable);
  }
}

}  // namespace la3::kernels
