// nvcc compiles the self-check kernels so the CUDA branch of simt.h is checked in every build.
#include "kernels/attention.cuh"
#include "kernels/activation.cuh"
#include "kernels/adamw.cuh"
#include "kernels/cross_entropy.cuh"
#include "kernels/dropout.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/embedding.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/softmax.cuh"
#include "kernels/simt/simt_selfcheck.cuh"

namespace la3::kernels {

void launch_block_reduce_sum(const float* in, float* out, int n, int blocks, int threads, cudaStream_t stream) {
  simt::launch(block_reduce_sum, dim3(blocks), dim3(threads), (threads / 32) * sizeof(float), stream, in, out, n);
}

}  // namespace la3::kernels
