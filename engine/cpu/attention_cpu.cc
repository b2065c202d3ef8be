// T5 attention core on the CPU: per (batch, head), S = scale q k^T + bias, masked softmax,
// dropout, O = P v. The four products go to OpenBLAS with the [batch, len, heads, head_dim]
// row stride (heads * head_dim), so nothing is transposed or copied. The relative-position
// bucket is computed on the fly from (key - query) and never stored as a [heads, q, k] table.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "kernels/philox.cuh"
#include "kernels/relative_position.cuh"

namespace la3 {

namespace {

using kernels::AttentionParams;

bool is_masked(const AttentionParams& p, const int32_t* key_mask, int64_t batch, int64_t query, int64_t key) {
  if (p.has_key_mask && key_mask[batch * p.k_len + key] == 0) return true;
  return p.causal && key > p.query_offset + query;
}

// The bias depends on (key - query) only, so each head needs q_len + k_len - 1 values, not
// q_len * k_len: relative_buckets(p)[key - query + q_len - 1] is the bucket of that pair.
std::vector<int> relative_buckets(const AttentionParams& p) {
  std::vector<int> buckets(static_cast<size_t>(std::max<int64_t>(p.q_len + p.k_len - 1, 0)));
  for (size_t d = 0; d < buckets.size(); ++d) {
    const int64_t key_minus_query = static_cast<int64_t>(d) - (p.q_len - 1);
    buckets[d] = kernels::t5_relative_position_bucket(static_cast<int>(key_minus_query - p.query_offset),
                                                      p.bidirectional, p.num_buckets, p.max_distance);
  }
  return buckets;
}

// The dropout multiplier of probability element `index` ([batch, heads, q_len, k_len]
// row-major): 0 or 1 / (1 - p). Backward recomputes it from the same Philox stream.
float keep_scale(const AttentionParams& p, uint64_t index) {
  if (p.dropout.p <= 0.0f) return 1.0f;
  return kernels::dropout_keep(p.dropout.p, p.dropout.seed, p.dropout.step, p.dropout.stream, index)
             ? 1.0f / (1.0f - p.dropout.p)
             : 0.0f;
}

// Pointers of one (batch, head) slice; rows are `row_stride` floats apart.
struct HeadView {
  int64_t row_stride;
  int64_t q_offset, k_offset;  // element offsets of the slice's first row
};

HeadView head_view(const AttentionParams& p, int64_t batch, int64_t head) {
  const int64_t row = p.heads * p.head_dim;
  return HeadView{row, batch * p.q_len * row + head * p.head_dim, batch * p.k_len * row + head * p.head_dim};
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

}  // namespace

void CpuBackend::attention_forward(const AttentionParams& p, const float* q, const float* k, const float* v,
                                   const float* bias_table, const int32_t* key_mask, float* out, float* probs) {
  const int64_t slices = p.batch * p.heads;
  const int64_t area = p.q_len * p.k_len;
  const std::vector<int> buckets = p.has_bias ? relative_buckets(p) : std::vector<int>();
  // Slices are independent; each thread owns its probs slice and its output columns.
#pragma omp parallel for schedule(static)
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t b = slice / p.heads, h = slice % p.heads;
    const HeadView view = head_view(p, b, h);
    float* scores = probs + slice * area;  // [q_len, k_len]: scores, then probabilities in place
    sgemm(false, true, p.q_len, p.k_len, p.head_dim, p.scale, q + view.q_offset, view.row_stride, k + view.k_offset,
          view.row_stride, 0.0f, scores, p.k_len);
    std::vector<float> bias_by_distance(buckets.size());  // this head's bias for each key - query
    for (size_t d = 0; d < buckets.size(); ++d) bias_by_distance[d] = bias_table[buckets[d] * p.heads + h];
    for (int64_t i = 0; i < p.q_len; ++i) {
      float* row = scores + i * p.k_len;
      float max_score = -INFINITY;
      bool any_visible = false;
      if (p.has_bias) {
        const float* bias_row = bias_by_distance.data() + (p.q_len - 1 - i);  // [j] = bias of key j
        for (int64_t j = 0; j < p.k_len; ++j) row[j] += bias_row[j];
      }
      for (int64_t j = 0; j < p.k_len; ++j) {
        if (is_masked(p, key_mask, b, i, j)) continue;
        any_visible = true;
        max_score = std::fmax(max_score, row[j]);
      }
      if (!any_visible) {
        // Every key masked: transformers' additive finfo.min mask makes all scores equal in
        // fp32, i.e. a uniform row. It is constant, so backward sends it no gradient.
        for (int64_t j = 0; j < p.k_len; ++j) row[j] = 1.0f / static_cast<float>(p.k_len);
        continue;
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < p.k_len; ++j) {
        row[j] = is_masked(p, key_mask, b, i, j) ? 0.0f : std::exp(row[j] - max_score);
        sum += row[j];
      }
      const float inverse = 1.0f / sum;
      for (int64_t j = 0; j < p.k_len; ++j) row[j] *= inverse;
    }
    float* context = out + view.q_offset;
    if (p.dropout.p > 0.0f) {
      std::vector<float> dropped(static_cast<size_t>(area));
      for (int64_t e = 0; e < area; ++e) {
        dropped[static_cast<size_t>(e)] = scores[e] * keep_scale(p, static_cast<uint64_t>(slice * area + e));
      }
      sgemm(false, false, p.q_len, p.head_dim, p.k_len, 1.0f, dropped.data(), p.k_len, v + view.k_offset,
            view.row_stride, 0.0f, context, view.row_stride);
    } else {
      sgemm(false, false, p.q_len, p.head_dim, p.k_len, 1.0f, scores, p.k_len, v + view.k_offset, view.row_stride,
            0.0f, context, view.row_stride);
    }
  }
}

void CpuBackend::attention_backward(const AttentionParams& p, const float* dout, const float* q, const float* k,
                                    const float* v, const int32_t* key_mask, const float* probs, float* dq, float* dk,
                                    float* dv, float* dbias_table) {
  const int64_t slices = p.batch * p.heads;
  const int64_t area = p.q_len * p.k_len;
  // dS per slice is kept so the bias-table reduction can run serially afterwards
  // (deterministic, no atomics); it is the size of probs.
  std::vector<float> dscores_all(static_cast<size_t>(slices * area));
#pragma omp parallel for schedule(static)
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t h = slice % p.heads, b = slice / p.heads;
    const HeadView view = head_view(p, b, h);
    const float* prob = probs + slice * area;
    float* dscores = dscores_all.data() + slice * area;
    std::vector<float> dropped(static_cast<size_t>(area));  // P after dropout
    std::vector<float> keep(static_cast<size_t>(area));
    for (int64_t e = 0; e < area; ++e) {
      keep[static_cast<size_t>(e)] = keep_scale(p, static_cast<uint64_t>(slice * area + e));
      dropped[static_cast<size_t>(e)] = prob[e] * keep[static_cast<size_t>(e)];
    }
    const float* dcontext = dout + view.q_offset;
    // dV = P_dropped^T dO
    sgemm(true, false, p.k_len, p.head_dim, p.q_len, 1.0f, dropped.data(), p.k_len, dcontext, view.row_stride, 0.0f,
          dv + view.k_offset, view.row_stride);
    // dP_dropped = dO V^T, then through dropout.
    sgemm(false, true, p.q_len, p.k_len, p.head_dim, 1.0f, dcontext, view.row_stride, v + view.k_offset,
          view.row_stride, 0.0f, dscores, p.k_len);
    for (int64_t i = 0; i < p.q_len; ++i) {
      float* drow = dscores + i * p.k_len;
      const float* prow = prob + i * p.k_len;
      const float* krow = keep.data() + i * p.k_len;
      // A fully masked row is constant (uniform): no gradient. Decided from the mask, not
      // from the probabilities, so a visible row that happens to be uniform still gets one.
      bool all_masked = true;
      for (int64_t j = 0; j < p.k_len && all_masked; ++j) all_masked = is_masked(p, key_mask, b, i, j);
      float dot = 0.0f;
      for (int64_t j = 0; j < p.k_len; ++j) {
        drow[j] *= krow[j];
        dot += drow[j] * prow[j];
      }
      for (int64_t j = 0; j < p.k_len; ++j) drow[j] = all_masked ? 0.0f : prow[j] * (drow[j] - dot);
    }
    // dQ = scale dS K ; dK = scale dS^T Q
    sgemm(false, false, p.q_len, p.head_dim, p.k_len, p.scale, dscores, p.k_len, k + view.k_offset, view.row_stride,
          0.0f, dq + view.q_offset, view.row_stride);
    sgemm(true, false, p.k_len, p.head_dim, p.q_len, p.scale, dscores, p.k_len, q + view.q_offset, view.row_stride,
          0.0f, dk + view.k_offset, view.row_stride);
  }
  if (dbias_table == nullptr || !p.has_bias) return;
  // Sum dS per (head, key - query) first, then fold the distances into their buckets.
  const std::vector<int> buckets = relative_buckets(p);
  std::vector<double> by_distance(buckets.size() * static_cast<size_t>(p.heads), 0.0);  // [distance, head]
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t h = slice % p.heads;
    const float* dscores = dscores_all.data() + slice * area;
    for (int64_t i = 0; i < p.q_len; ++i) {
      double* column = by_distance.data() + static_cast<size_t>((p.q_len - 1 - i) * p.heads + h);
      for (int64_t j = 0; j < p.k_len; ++j) column[static_cast<size_t>(j * p.heads)] += dscores[i * p.k_len + j];
    }
  }
  for (size_t d = 0; d < buckets.size(); ++d) {
    for (int64_t h = 0; h < p.heads; ++h) {
      dbias_table[buckets[d] * p.heads + h] += static_cast<float>(by_distance[d * static_cast<size_t>(p.heads) + static_cast<size_t>(h)]);
    }
  }
}

}  // namespace la3
