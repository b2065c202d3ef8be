// CudaBackend: the k+1-caption loss fused with the vocabulary softmax, and the device-scalar
// loss reductions (kernels/caption_loss.cuh). Nothing here reads device memory on the host.
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/caption_loss.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {

void check_token_grid(const kernels::CaptionLossParams& p) {
  if (!kernels::caption_tokens_fit(p)) {
    Fail(ErrorKind::kInvalidArgument, "caption_loss: ", p.rows * p.length, " tokens exceed one grid");
  }
}

}  // namespace

void CudaBackend::caption_loss_log_probs(const kernels::CaptionLossParams& p, DType act, const void* logits,
                                         const int64_t* labels, float* log_prob, float* lse) {
  check_token_grid(p);
  with_act_type("caption_loss_log_probs", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_caption_log_probs(StreamLaunch{stream_}, p, static_cast<const T*>(logits), labels, log_prob, lse);
  });
}

void CudaBackend::caption_loss_mean_fused(const kernels::CaptionLossParams& p, DType act, const void* logits,
                                          const int64_t* labels, float* log_prob, float* inverse_tokens,
                                          void* dlogits) {
  check_token_grid(p);
  with_act_type("caption_loss_mean_fused", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_caption_mean_fused(StreamLaunch{stream_}, p, static_cast<const T*>(logits), labels, log_prob,
                                       inverse_tokens, static_cast<T*>(dlogits));
  });
}

void CudaBackend::caption_loss_combine(const kernels::CaptionLossParams& p, const float* log_prob,
                                       const int64_t* labels, const int64_t* group, float* token_weight, float* loss,
                                       float* inverse_tokens) {
  if (p.max_group_rows > kernels::kCaptionMaxGroupRows) {
    Fail(ErrorKind::kInvalidArgument, "caption_loss: a group of ", p.max_group_rows, " rows exceeds the ",
         kernels::kCaptionMaxGroupRows, " rows the CUDA combine kernel takes");
  }
  DeviceScratch partials(*allocator_, static_cast<size_t>(kernels::caption_combine_scratch_doubles(p)) * sizeof(double));
  kernels::launch_caption_combine(StreamLaunch{stream_}, p, log_prob, labels, group, token_weight, loss,
                                  inverse_tokens, partials.as<double>());
}

void CudaBackend::caption_loss_backward(const kernels::CaptionLossParams& p, DType act, const void* logits,
                                        const int64_t* labels, const float* lse, const float* token_weight,
                                        const float* upstream, const float* inverse_tokens, void* dlogits) {
  check_token_grid(p);
  with_act_type("caption_loss_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_caption_backward(StreamLaunch{stream_}, p, static_cast<const T*>(logits), labels, lse,
                                     token_weight, upstream, inverse_tokens, static_cast<T*>(dlogits));
  });
}

void CudaBackend::sum_to_scalar(int64_t count, const float* x, double alpha, float* out) {
  kernels::launch_sum_to_scalar(StreamLaunch{stream_}, count, x, alpha, out);
}

void CudaBackend::scale_by_device_scalar(int64_t count, DType act, const float* scalar, void* x) {
  with_act_type("scale_by_device_scalar", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_scale_by_device_scalar(StreamLaunch{stream_}, count, scalar, static_cast<T*>(x));
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
