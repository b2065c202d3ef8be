#include "model/t5_decoding.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/allocator.h"
#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/attention.h"
#include "engine/ops/decoding.h"

namespace la3 {

namespace {

// Copies bytes between two buffers of one device (a memcpy on the host, a device copy on a
// GPU device: the cache never leaves the model's device).
void copy_bytes(Device device, void* dst, const void* src, size_t bytes) {
  if (allocator_for(device).host_accessible()) {
    std::memcpy(dst, src, bytes);
  } else {
    backend_for(device).copy_on_device(dst, src, bytes);
  }
}

}  // namespace

Tensor gather_rows(const Tensor& tensor, const std::vector<int64_t>& rows) {
  const Tensor source = tensor.contiguous();
  Shape shape = source.shape();
  const int64_t row_elements = source.numel() / std::max<int64_t>(shape[0], 1);
  shape[0] = static_cast<int64_t>(rows.size());
  Tensor out = Tensor::empty(shape, source.dtype(), source.device());
  const size_t row_bytes = static_cast<size_t>(row_elements) * dtype_size(source.dtype());
  const char* in = static_cast<const char*>(source.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r] < 0 || rows[r] >= source.size(0)) {
      Fail(ErrorKind::kOutOfRange, "gather_rows: row ", rows[r], " outside ", source.describe());
    }
    copy_bytes(source.device(), dst + r * row_bytes, in + static_cast<size_t>(rows[r]) * row_bytes, row_bytes);
  }
  return out;
}

namespace {

std::vector<int64_t> repeat_rows(int64_t batch, int64_t copies) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < copies; ++c) rows.push_back(b);
  }
  return rows;
}

// Layer `layer`'s keys (kind 0) or values (kind 1): [rows, max_steps, heads, d_kv], a view of
// the one cache allocation.
Tensor self_cache(const T5DecodingCache& cache, int64_t layer, int64_t kind) {
  const Tensor& all = cache.self_key_values;
  return all.narrow(0, 2 * layer + kind, 1).view({all.size(1), all.size(2), all.size(3), all.size(4)});
}

}  // namespace

T5DecodingCache T5Decoder::start(const Tensor& encoder_hidden, const Tensor& encoder_mask, int64_t copies,
                                 int64_t max_steps) const {
  NoGradGuard no_grad;
  const T5Config& c = model_.config();
  if (copies < 1 || max_steps < 1) {
    Fail(ErrorKind::kInvalidArgument, "T5Decoder::start: copies (", copies, ") and max_steps (", max_steps,
         ") must be >= 1");
  }
  const int64_t batch = encoder_hidden.size(0);
  const std::vector<int64_t> rows = repeat_rows(batch, copies);
  T5DecodingCache cache;
  cache.rows = batch * copies;
  cache.max_steps = max_steps;
  cache.copies = copies;
  // Converted once here: cross-attention reads i32 key flags every step without a conversion.
  if (encoder_mask.defined()) cache.encoder_mask = gather_rows(ops::key_mask_as_flags(encoder_mask), rows);
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    const T5KeyValues cross =
        model_.project_key_values(absl::StrCat("decoder.block.", i, ".layer.1.EncDecAttention."), encoder_hidden);
    cache.cross_keys.push_back(copies == 1 ? cross.keys : gather_rows(cross.keys, rows));
    cache.cross_values.push_back(copies == 1 ? cross.values : gather_rows(cross.values, rows));
  }
  cache.self_key_values = Tensor::zeros({2 * c.num_decoder_layers, cache.rows, max_steps, c.num_heads, c.d_kv},
                                        DType::kF32, model_.device());
  return cache;
}

T5KeyValues T5DecodingCache::store_self(int64_t layer, const T5KeyValues& step) {
  if (steps >= max_steps) {
    Fail(ErrorKind::kOutOfRange, "decode step: the cache holds ", max_steps, " positions, all decoded");
  }
  T5KeyValues cached{self_cache(*this, layer, 0), self_cache(*this, layer, 1)};
  ops::write_cache_position(cached.keys, step.keys, steps);
  ops::write_cache_position(cached.values, step.values, steps);
  return cached;
}

T5KeyValues T5DecodingCache::cross(int64_t layer) const {
  return T5KeyValues{cross_keys[static_cast<size_t>(layer)], cross_values[static_cast<size_t>(layer)]};
}

Tensor T5Decoder::step(T5DecodingCache& cache, const std::vector<int64_t>& tokens) const {
  NoGradGuard no_grad;
  if (static_cast<int64_t>(tokens.size()) != cache.rows) {
    Fail(ErrorKind::kInvalidArgument, "decode step: ", tokens.size(), " tokens for ", cache.rows, " cache rows");
  }
  const Tensor ids = Tensor::from_vector<int64_t>({cache.rows, 1}, tokens, model_.device());
  const Tensor logits = model_.decoder_forward(ids, Tensor(), cache.encoder_mask, T5ForwardOptions{}, &cache);
  ++cache.steps;
  return logits.view({cache.rows, logits.size(-1)});
}

void T5Decoder::reorder(T5DecodingCache& cache, const std::vector<int64_t>& rows) {
  // Only the decoded positions move. Cross K/V and the mask depend only on the input, which
  // a beam never changes: beams are reordered within their input's block, so those rows are
  // already right.
  const Tensor& all = cache.self_key_values;
  const int64_t position_elements = all.size(3) * all.size(4);
  ops::reorder_rows_in_place(all.view({all.size(0), all.size(1), all.size(2) * position_elements}), rows,
                             cache.steps * position_elements, cache.copies);
}

}  // namespace la3
