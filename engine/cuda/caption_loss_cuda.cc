// CudaBackend: the k+1-caption loss fused with the vocabulary softmax, and the device-scalar
// loss reductions (kernels/caption_loss.cuh). Nothing here reads device memory on the host.
#include <algorithm>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/caption_loss.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {

// One block per token (a (row, position) pair).
dim3 token_grid(const kernels::CaptionLossParams& p) {
  const int64_t tokens = p.rows * p.length;
  if (tokens > 0x7fffffff) Fail(ErrorKind::kInvalidArgument, "caption_loss: ", tokens, " tokens exceed one grid");
  return dim3(static_cast<unsigned>(tokens));
}

}  // namespace

void CudaBackend::caption_loss_log_probs(const kernels::CaptionLossParams& p, const float* logits,
                                         const int64_t* labels, float* log_prob, float* lse) {
  if (p.rows * p.length == 0) return;
  launch_kernel(kernels::caption_token_log_prob_kernel, token_grid(p), dim3(kernels::caption_token_threads(p.vocab)), 0, stream_, p,
                logits, labels, log_prob, lse);
}

void CudaBackend::caption_loss_mean_fused(const kernels::CaptionLossParams& p, const float* logits,
                                          const int64_t* labels, float* log_prob, float* inverse_tokens,
                                          float* dlogits) {
  launch_kernel(kernels::caption_count_tokens_kernel, dim3(1), dim3(kernels::kCaptionReduceThreads), 0, stream_, p,
                labels, inverse_tokens);
  if (p.rows * p.length == 0) return;
  launch_kernel(kernels::caption_mean_fused_kernel, token_grid(p), dim3(kernels::caption_token_threads(p.vocab)), 0, stream_, p,
                logits, labels, static_cast<const float*>(inverse_tokens), log_prob, dlogits);
}

void CudaBackend::caption_loss_combine(const kernels::CaptionLossParams& p, const float* log_prob,
                                       const int64_t* labels, const int64_t* group, float* token_weight, float* loss,
                                       float* inverse_tokens) {
  if (p.max_group_rows > kernels::kCaptionMaxGroupRows) {
    Fail(ErrorKind::kInvalidArgument, "caption_loss: a group of ", p.max_group_rows, " rows exceeds the ",
         kernels::kCaptionMaxGroupRows, " rows the CUDA combine kernel takes");
  }
  // Per-group (loss, tokens) partials, then one block sums them in a fixed order.
  DeviceScratch partials(*allocator_, static_cast<size_t>(std::max<int64_t>(p.groups, 1)) * 2 * sizeof(double));
  if (p.groups > 0) {
    launch_kernel(kernels::caption_combine_kernel, dim3(static_cast<unsigned>(p.groups)),
                  dim3(kernels::kCaptionCombineThreads), kernels::caption_combine_shared_bytes(p.max_group_rows),
                  stream_, p, log_prob, labels, group, token_weight, partials.as<double>());
  }
  launch_kernel(kernels::caption_final_kernel, dim3(1), dim3(kernels::kCaptionReduceThreads), 0, stream_, p,
                static_cast<const double*>(partials.as<double>()), loss, inverse_tokens);
}

void CudaBackend::caption_loss_backward(const kernels::CaptionLossParams& p, const float* logits,
                                        const int64_t* labels, const float* lse, const float* token_weight,
                                        const float* upstream, const float* inverse_tokens, float* dlogits) {
  if (p.rows * p.length == 0) return;
  launch_kernel(kernels::caption_backward_kernel, token_grid(p), dim3(kernels::caption_token_threads(p.vocab)), 0, stream_, p,
                logits, labels, lse, token_weight, upstream, inverse_tokens, dlogits);
}

void CudaBackend::sum_to_scalar(int64_t count, const float* x, double alpha, float* out) {
  launch_kernel(kernels::sum_to_scalar_kernel, dim3(1), dim3(kernels::kCaptionReduceThreads), 0, stream_, count, x,
                alpha, out);
}

void CudaBackend::scale_by_device_scalar(int64_t count, const float* scalar, float* x) {
  if (count == 0) return;
  const int64_t blocks = std::clamp<int64_t>((count + kernels::kCaptionReduceThreads - 1) / kernels::kCaptionReduceThreads,
                                             1, 1024);
  launch_kernel(kernels::scale_by_device_scalar_kernel, dim3(static_cast<unsigned>(blocks)),
                dim3(kernels::kCaptionReduceThreads), 0, stream_, count, scalar, x);
}

}  // namespace la3::LA3_CUDA_FLAVOUR
