#include "model/t5_decoding.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/allocator.h"
#include "engine/autograd/tape.h"
#include "engine/backend.h"

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

// [rows, t, heads, d] + [rows, 1, heads, d] -> [rows, t + 1, heads, d].
Tensor append_step(const Tensor& cache, const Tensor& step) {
  if (!cache.defined()) return step.contiguous();
  const int64_t rows = cache.size(0), t = cache.size(1);
  const int64_t per_step = cache.size(2) * cache.size(3);
  Tensor out = Tensor::empty({rows, t + 1, cache.size(2), cache.size(3)}, DType::kF32, cache.device());
  const Tensor dense_step = step.contiguous();
  const float* old_data = cache.data<float>();
  const float* step_data = dense_step.data<float>();
  float* dst = out.data<float>();
  const Device device = cache.device();
  for (int64_t r = 0; r < rows; ++r) {
    copy_bytes(device, dst + r * (t + 1) * per_step, old_data + r * t * per_step, sizeof(float) * static_cast<size_t>(t * per_step));
    copy_bytes(device, dst + (r * (t + 1) + t) * per_step, step_data + r * per_step, sizeof(float) * static_cast<size_t>(per_step));
  }
  return out;
}

std::vector<int64_t> repeat_rows(int64_t batch, int64_t copies) {
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t c = 0; c < copies; ++c) rows.push_back(b);
  }
  return rows;
}

}  // namespace

T5DecodingCache T5Decoder::start(const Tensor& encoder_hidden, const Tensor& encoder_mask, int64_t copies) const {
  NoGradGuard no_grad;
  const T5Config& c = model_.config();
  const int64_t batch = encoder_hidden.size(0);
  const std::vector<int64_t> rows = repeat_rows(batch, copies);
  T5DecodingCache cache;
  cache.rows = batch * copies;
  if (encoder_mask.defined()) cache.encoder_mask = gather_rows(encoder_mask.to(DType::kI64), rows);
  for (int64_t i = 0; i < c.num_decoder_layers; ++i) {
    const T5KeyValues cross =
        model_.project_key_values(absl::StrCat("decoder.block.", i, ".layer.1.EncDecAttention."), encoder_hidden);
    cache.cross_keys.push_back(copies == 1 ? cross.keys : gather_rows(cross.keys, rows));
    cache.cross_values.push_back(copies == 1 ? cross.values : gather_rows(cross.values, rows));
  }
  cache.self_keys.resize(static_cast<size_t>(c.num_decoder_layers));
  cache.self_values.resize(static_cast<size_t>(c.num_decoder_layers));
  return cache;
}

T5KeyValues T5DecodingCache::store_self(int64_t layer, const T5KeyValues& step) {
  const size_t index = static_cast<size_t>(layer);
  self_keys[index] = append_step(self_keys[index], step.keys);
  self_values[index] = append_step(self_values[index], step.values);
  return T5KeyValues{self_keys[index], self_values[index]};
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
  for (Tensor& t : cache.self_keys) t = gather_rows(t, rows);
  for (Tensor& t : cache.self_values) t = gather_rows(t, rows);
  // Cross K/V and the mask depend only on the input, which a beam never changes: beams are
  // reordered within their input's block, so those rows are already right.
}

}  // namespace la3
