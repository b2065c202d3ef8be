// Embedding gather and scatter-add (f32 table, int64 ids): one block per id, threads over the
// dimension. The CUDA counterpart of engine/cpu/embedding_cpu.cc.
#pragma once

#include <cstdint>

#include "kernels/op_params.h"
#include "kernels/launch.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// Embedding gather: one block per id, threads over the dimension.
__global__ void embedding_forward_kernel(EmbeddingParams p, const int64_t* ids, const float* table, float* out) {
  const int64_t i = blockIdx.x;
  const float* row = table + ids[i] * p.dim;
  for (int64_t c = threadIdx.x; c < p.dim; c += blockDim.x) out[i * p.dim + c] = row[c];
}

// Scatter-add of the gradient rows into the table gradient. Repeated ids race, so the sum
// uses atomics (its order, and so the last bits, may vary between runs on a GPU).
__global__ void embedding_backward_kernel(EmbeddingParams p, const int64_t* ids, const float* dout, float* dtable) {
  const int64_t i = blockIdx.x;
  float* row = dtable + ids[i] * p.dim;
  for (int64_t c = threadIdx.x; c < p.dim; c += blockDim.x) atomicAdd(&row[c], dout[i * p.dim + c]);
}

// --- launchers (kernels/launch.h): one block per id --------------------------------------------

constexpr unsigned int kEmbeddingThreads = 64;

template <typename Launch>
void launch_embedding_forward(const Launch& launch, const EmbeddingParams& p, const int64_t* ids, const float* table,
                              float* out) {
  if (p.count > 0) {
    launch(embedding_forward_kernel, dim3(static_cast<unsigned>(p.count)), dim3(kEmbeddingThreads), 0, p, ids, table, out);
  }
}
template <typename Launch>
void launch_embedding_backward(const Launch& launch, const EmbeddingParams& p, const int64_t* ids, const float* dout,
                               float* dtable) {
  if (p.count > 0) {
    launch(embedding_backward_kernel, dim3(static_cast<unsigned>(p.count)), dim3(kEmbeddingThreads), 0, p, ids, dout,
           dtable);
  }
}

}  // namespace la3::kernels
