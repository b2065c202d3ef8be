#include "engine/ops/decoding.h"

#include <algorithm>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

namespace {

void check_contiguous(const char* op, const char* name, const Tensor& tensor) {
  if (!tensor.is_contiguous()) Fail(ErrorKind::kInvalidArgument, op, ": ", name, " must be contiguous, got ", tensor.describe());
}

}  // namespace

void write_cache_position(const Tensor& cache, const Tensor& step_in, int64_t position) {
  constexpr const char* kOp = "write_cache_position";
  check_activation(kOp, "cache", cache);
  check_activation(kOp, "step", step_in);
  check_same_dtype(kOp, "cache", cache, "step", step_in);
  check_same_device(kOp, {&cache, &step_in});
  check_contiguous(kOp, "cache", cache);
  if (cache.rank() < 2 || step_in.rank() != cache.rank() || step_in.size(0) != cache.size(0) || step_in.size(1) != 1) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": step ", step_in.describe(), " must be [rows, 1, ...] for cache ", cache.describe());
  }
  for (int d = 2; d < cache.rank(); ++d) {
    if (step_in.size(d) != cache.size(d)) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": step ", step_in.describe(), " does not match cache ", cache.describe());
    }
  }
  if (position < 0 || position >= cache.size(1)) {
    Fail(ErrorKind::kOutOfRange, kOp, ": position ", position, " outside cache ", cache.describe());
  }
  const Tensor step = step_in.contiguous();
  kernels::CacheWriteParams p;
  p.rows = cache.size(0);
  p.width = step.numel() / std::max<int64_t>(p.rows, 1);
  p.dst_row_stride = cache.size(1) * p.width;
  p.dst_offset = position * p.width;
  backend_for(cache.device()).cache_write(p, cache.dtype(), step.raw_data(), cache.raw_data());
}

void reorder_rows_in_place(const Tensor& buffer, const std::vector<int64_t>& source_rows, int64_t width, int64_t group) {
  constexpr const char* kOp = "reorder_rows_in_place";
  check_activation(kOp, "buffer", buffer);
  check_rank(kOp, "buffer", buffer, 3);
  check_contiguous(kOp, "buffer", buffer);
  const int64_t rows = buffer.size(1);
  if (static_cast<int64_t>(source_rows.size()) != rows || group < 1 || rows % group != 0 || width < 0 ||
      width > buffer.size(2)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": ", source_rows.size(), " source rows, group ", group, ", width ", width,
         " for buffer ", buffer.describe());
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t source = source_rows[static_cast<size_t>(r)];
    if (source < 0 || source >= rows || source / group != r / group) {
      Fail(ErrorKind::kOutOfRange, kOp, ": row ", r, " would take row ", source, ", outside its group of ", group);
    }
  }
  const Tensor sources = Tensor::from_vector<int64_t>({rows}, source_rows, buffer.device());
  kernels::RowReorderParams p;
  p.segments = buffer.size(0);
  p.rows = rows;
  p.group = group;
  p.row_stride = buffer.size(2);
  p.segment_stride = rows * buffer.size(2);
  p.width = width;
  backend_for(buffer.device()).reorder_rows(p, buffer.dtype(), sources.data<int64_t>(), buffer.raw_data());
}

ProcessedLogits process_logits(const Tensor& logits_in, const Tensor& history_in, const Tensor& beam_scores_in,
                               const LogitsProcessing& options) {
  constexpr const char* kOp = "process_logits";
  check_activation(kOp, "logits", logits_in);
  check_rank(kOp, "logits", logits_in, 2);
  check_integer(kOp, "history", history_in);
  check_rank(kOp, "history", history_in, 2);
  check_same_device(kOp, {&logits_in, &history_in, &beam_scores_in});
  const int64_t rows = logits_in.size(0), vocab = logits_in.size(1);
  if (history_in.size(0) != rows) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": history ", history_in.describe(), " does not match logits ", logits_in.describe());
  }
  if (beam_scores_in.defined()) {
    check_f32(kOp, "beam_scores", beam_scores_in);
    if (beam_scores_in.shape() != Shape{rows}) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": beam_scores ", beam_scores_in.describe(), " must be [", rows, "]");
    }
  }
  if (options.repetition_penalty <= 0.0f || options.no_repeat_ngram < 0 || options.temperature <= 0.0) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": repetition_penalty and temperature must be > 0, no_repeat_ngram >= 0");
  }
  const Tensor logits = logits_in.contiguous();
  const Tensor history = as_int64(history_in);
  const Tensor beam_scores = beam_scores_in.defined() ? beam_scores_in.contiguous() : Tensor();
  kernels::LogitsProcessParams p;
  p.rows = rows;
  p.vocab = vocab;
  p.history_len = history.size(1);
  p.eos = options.eos;
  p.ban_eos = options.ban_eos ? 1 : 0;
  p.log_softmax = options.log_softmax ? 1 : 0;
  p.no_repeat_ngram = options.no_repeat_ngram;
  p.repetition_penalty = options.repetition_penalty;
  p.temperature = options.temperature;
  ProcessedLogits out;
  out.scores = Tensor::empty({rows, vocab}, DType::kF32, logits.device());
  if (options.want_log_probs) out.log_probs = Tensor::empty({rows, vocab}, DType::kF32, logits.device());
  backend_for(logits.device())
      .process_logits(p, logits.dtype(), logits.raw_data(), history.data<int64_t>(),
                      beam_scores.defined() ? beam_scores.data<float>() : nullptr, out.scores.data<float>(),
                      options.want_log_probs ? out.log_probs.data<float>() : nullptr);
  return out;
}

TopK top_k(const Tensor& scores_in, int64_t k, const Tensor& companion_in) {
  constexpr const char* kOp = "top_k";
  check_f32(kOp, "scores", scores_in);
  check_rank(kOp, "scores", scores_in, 2);
  check_same_device(kOp, {&scores_in, &companion_in});
  const int64_t groups = scores_in.size(0), n = scores_in.size(1);
  if (k < 1 || k > n) Fail(ErrorKind::kInvalidArgument, kOp, ": k must be in [1, ", n, "], got ", k);
  if (companion_in.defined()) {
    check_f32(kOp, "companion", companion_in);
    check_same_shape(kOp, "companion", companion_in, "scores", scores_in);
  }
  const Tensor scores = scores_in.contiguous();
  const Tensor companion = companion_in.defined() ? companion_in.contiguous() : Tensor();
  kernels::TopKParams p;
  p.groups = groups;
  p.n = n;
  p.k = k;
  TopK out;
  out.indices = Tensor::empty({groups, k}, DType::kI64, scores.device());
  out.values = Tensor::empty({groups, k}, DType::kF32, scores.device());
  if (companion.defined()) out.companion = Tensor::empty({groups, k}, DType::kF32, scores.device());
  backend_for(scores.device())
      .top_k(p, scores.data<float>(), companion.defined() ? companion.data<float>() : nullptr,
             out.indices.data<int64_t>(), out.values.data<float>(),
             companion.defined() ? out.companion.data<float>() : nullptr);
  return out;
}

}  // namespace la3::ops
