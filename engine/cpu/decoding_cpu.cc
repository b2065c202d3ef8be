// Incremental decoding on the CPU: the key/value cache write and beam reorder, the logits
// processors and top-k (kernels/decoding_params.h). The processors and the selection are the
// fp32 loops generation used to run on a host copy of the logits, so CPU results are the
// same bits as before the ops existed; rows (and groups) are independent, hence parallel.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"

namespace la3 {

namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

// log_softmax of one row in fp32, in torch's order: x - max - log(sum(exp(x - max))).
void log_softmax_row(const float* x, int64_t n, float* out) {
  float max_value = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max_value = std::max(max_value, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - max_value);
  const float log_sum = std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - max_value - log_sum;
}

bool in_vocabulary(int64_t token, int64_t vocab) { return token >= 0 && token < vocab; }

}  // namespace

// The cache write and the reorder move elements without arithmetic: they take f32 or bf16 by
// element size (so a bf16 cache can be checked against the CPU bit for bit).
void CpuBackend::cache_write(const kernels::CacheWriteParams& p, DType act, const void* src_in, void* dst_in) {
  const size_t element = dtype_size(act);
  const auto* src = static_cast<const char*>(src_in);
  auto* dst = static_cast<char*>(dst_in);
  for (int64_t r = 0; r < p.rows; ++r) {
    std::memcpy(dst + (r * p.dst_row_stride + p.dst_offset) * element, src + r * p.width * element,
                element * static_cast<size_t>(p.width));
  }
}

void CpuBackend::reorder_rows(const kernels::RowReorderParams& p, DType act, const int64_t* source_rows, void* data_in) {
  const int64_t groups = p.group > 0 ? p.rows / p.group : 0;
  const int64_t element = static_cast<int64_t>(dtype_size(act));
  auto* data = static_cast<char*>(data_in);
#pragma omp parallel for schedule(static) if (worth_parallel(p.segments * p.rows * p.width))
  for (int64_t task = 0; task < p.segments * groups; ++task) {
    char* segment = data + (task / groups) * p.segment_stride * element;
    const int64_t first = (task % groups) * p.group;
    // A row that keeps its place is neither staged nor written.
    bool identity = true;
    for (int64_t g = 0; g < p.group; ++g) identity = identity && source_rows[first + g] == first + g;
    if (identity) continue;
    const size_t row_bytes = static_cast<size_t>(p.width * element);
    std::vector<char> staged(static_cast<size_t>(p.group) * row_bytes);
    for (int64_t g = 0; g < p.group; ++g) {
      std::memcpy(staged.data() + g * row_bytes, segment + (first + g) * p.row_stride * element, row_bytes);
    }
    for (int64_t g = 0; g < p.group; ++g) {
      std::memcpy(segment + (first + g) * p.row_stride * element,
                  staged.data() + (source_rows[first + g] - first) * static_cast<int64_t>(row_bytes), row_bytes);
    }
  }
}

void CpuBackend::process_logits(const kernels::LogitsProcessParams& p, DType act, const void* logits_in,
                                const int64_t* history, const float* beam_scores, float* processed, float* log_probs) {
  require_f32_activations("process_logits", act);
  const auto* logits = static_cast<const float*>(logits_in);
#pragma omp parallel for schedule(static) if (worth_parallel(p.rows * p.vocab))
  for (int64_t r = 0; r < p.rows; ++r) {
    const float* x = logits + r * p.vocab;
    float* row = processed + r * p.vocab;
    const int64_t* h = history + r * p.history_len;
    if (log_probs != nullptr) log_softmax_row(x, p.vocab, log_probs + r * p.vocab);
    if (p.log_softmax != 0) {
      log_softmax_row(x, p.vocab, row);
    } else if (row != x) {
      std::memcpy(row, x, sizeof(float) * static_cast<size_t>(p.vocab));
    }
    if (p.repetition_penalty != 1.0f) {
      std::vector<int64_t> seen(h, h + p.history_len);
      std::sort(seen.begin(), seen.end());
      seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
      for (int64_t token : seen) {
        if (!in_vocabulary(token, p.vocab)) continue;
        row[token] = row[token] < 0 ? row[token] * p.repetition_penalty : row[token] / p.repetition_penalty;
      }
    }
    const int64_t n = p.no_repeat_ngram;
    if (n > 0 && p.history_len + 1 >= n) {
      // Ban every token that would complete an n-gram already present.
      const int64_t prefix_start = p.history_len - (n - 1);
      for (int64_t start = 0; start + n <= p.history_len; ++start) {
        if (std::equal(h + start, h + start + n - 1, h + prefix_start) && in_vocabulary(h[start + n - 1], p.vocab)) {
          row[h[start + n - 1]] = kNegativeInfinity;
        }
      }
    }
    if (p.ban_eos != 0 && in_vocabulary(p.eos, p.vocab)) row[p.eos] = kNegativeInfinity;
    if (p.temperature != 1.0) {
      for (int64_t v = 0; v < p.vocab; ++v) row[v] = static_cast<float>(row[v] / p.temperature);
    }
    if (beam_scores != nullptr) {
      for (int64_t v = 0; v < p.vocab; ++v) row[v] += beam_scores[r];
    }
  }
}

void CpuBackend::top_k(const kernels::TopKParams& p, const float* scores, const float* companion, int64_t* indices,
                       float* values, float* companion_values) {
#pragma omp parallel for schedule(static) if (worth_parallel(p.groups * p.n))
  for (int64_t g = 0; g < p.groups; ++g) {
    const float* block = scores + g * p.n;
    // torch.topk's order: higher first, the lower index first among equals.
    auto before = [block](int64_t x, int64_t y) { return block[x] > block[y] || (block[x] == block[y] && x < y); };
    std::vector<int64_t> chosen;
    if (p.k == 1) {
      int64_t best = 0;
      for (int64_t i = 1; i < p.n; ++i) best = before(i, best) ? i : best;
      chosen.push_back(best);
    } else {
      chosen.resize(static_cast<size_t>(p.n));
      std::iota(chosen.begin(), chosen.end(), 0);
      std::partial_sort(chosen.begin(), chosen.begin() + p.k, chosen.end(), before);
    }
    for (int64_t j = 0; j < p.k; ++j) {
      const int64_t index = chosen[static_cast<size_t>(j)];
      indices[g * p.k + j] = index;
      values[g * p.k + j] = block[index];
      if (companion != nullptr) companion_values[g * p.k + j] = companion[g * p.n + index];
    }
  }
}

}  // namespace la3
