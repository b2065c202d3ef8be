// T5 attention core on the CPU (f32 activations only), the fp32 reference of the fused
// kernel. Per (batch, head) "slice":
//   S = scale q k^T + bias[bucket(key - query), head]     masked keys excluded
//   P = softmax(S)                                        saved to `probs` (pre-dropout)
//   O = dropout(P) v
// The products go to OpenBLAS directly on the [batch, len, heads, head_dim] layout: a head's
// rows are heads * head_dim floats apart, so nothing is transposed or copied. The bias
// depends on (key - query) only, so its bucket is computed once per distance and never
// stored as a [heads, q_len, k_len] tensor.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/parallel.h"
#include "engine/cpu/denormals.h"
#include "kernels/dropout_key.cuh"
#include "kernels/philox.cuh"
#include "kernels/relative_position.cuh"

namespace la3 {

namespace {

using kernels::AttentionParams;

// Whether `key` is hidden from query row `query` of batch item `batch`: a padding key, or
// (causal) a key after the query's absolute position query_offset + query.
bool is_masked(const AttentionParams& p, const int32_t* key_mask, int64_t batch, int64_t query, int64_t key) {
  if (p.has_key_mask && key_mask[batch * p.k_len + key] == 0) return true;
  return p.causal && key > p.query_offset + query;
}

// All (query, key) pairs of a slice share q_len + k_len - 1 distinct offsets key - query.
// Index `distance_index(i, j) = j - i + q_len - 1` numbers them from 0.
int64_t distance_count(const AttentionParams& p) { return std::max<int64_t>(p.q_len + p.k_len - 1, 0); }

// The bucket of every offset: bucket(key - (query_offset + query)) at distance_index.
std::vector<int> bucket_by_distance(const AttentionParams& p) {
  std::vector<int> buckets(static_cast<size_t>(distance_count(p)));
  for (size_t d = 0; d < buckets.size(); ++d) {
    const int64_t key_minus_query = static_cast<int64_t>(d) - (p.q_len - 1);
    buckets[d] = kernels::t5_relative_position_bucket(static_cast<int>(key_minus_query - p.query_offset),
                                                      p.bidirectional, p.num_buckets, p.max_distance);
  }
  return buckets;
}

// The dropout multipliers of the [q_len, k_len] probabilities of slice (b, h): 0 or
// 1 / (1 - p), all 1 without dropout. Backward recomputes them from the same Philox counters
// instead of storing a mask. A query row's keys are consecutive element keys
// (kernels/dropout_key.cuh), so each row is one run of one Philox block per four keys.
void slice_dropout_multipliers(const AttentionParams& p, int64_t b, int64_t h, float* out) {
  if (p.dropout.p <= 0.0f) {
    std::fill_n(out, p.q_len * p.k_len, 1.0f);
    return;
  }
  for (int64_t i = 0; i < p.q_len; ++i) {
    kernels::dropout_multipliers(p.dropout.p, p.dropout.seed, p.dropout.step, p.dropout.stream,
                                 kernels::attention_dropout_key(p, b, h, i, 0), p.k_len, out + i * p.k_len);
  }
}

// Where one (batch, head) slice starts in the [batch, len, heads, head_dim] tensors.
struct SliceView {
  int64_t row_stride;  // heads * head_dim: from one position to the next
  int64_t q_offset;    // first element of the slice in q / out / dq / dout
  int64_t k_offset;    // first element of the slice in k / v / dk / dv
};

SliceView slice_view(const AttentionParams& p, int64_t batch, int64_t head) {
  const int64_t row = p.heads * p.head_dim;
  return SliceView{row, batch * p.q_len * row + head * p.head_dim, batch * p.k_len * row + head * p.head_dim};
}

// Row-major C = alpha op(A) op(B) + beta C; C is m x n, the inner dimension k.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    // An empty sum: BLAS would only scale C (and some builds reject k == 0 leading dimensions).
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

// Whether to spread the slices over OpenMP threads. Correctness does not depend on it: every
// slice writes only its own rows of probs/out/dq/dk/dv and its own scratch (the bias-table
// reduction runs serially afterwards), and OpenBLAS >= 0.3.7 accepts concurrent callers.
// Speed does: OpenBLAS multithreads a GEMM once m*n*k exceeds 4 * 65536 (its
// GEMM_MULTITHREAD_THRESHOLD * SMP_THRESHOLD_MIN), and OpenBLAS threads inside OpenMP
// threads oversubscribe the cores. So slices run in parallel only while each GEMM is small
// enough to stay single-threaded in OpenBLAS; larger ones run one after the other and let
// OpenBLAS use the cores.
bool parallel_over_slices(const AttentionParams& p) {
  constexpr double kOpenBlasSingleThreadLimit = 4.0 * 65536.0;
  const double largest_gemm = static_cast<double>(p.q_len) * static_cast<double>(p.k_len) *
                              static_cast<double>(std::max<int64_t>(p.head_dim, 1));
  return p.batch * p.heads > 1 && largest_gemm <= kOpenBlasSingleThreadLimit &&
         worth_parallel(p.batch * p.heads * p.q_len * p.k_len * std::max<int64_t>(p.head_dim, 1));
}

}  // namespace

// The CPU keeps the probabilities (pre-dropout) for backward: [batch, heads, q_len, k_len].
int64_t CpuBackend::attention_saved_elements(const AttentionParams& p) const {
  return p.batch * p.heads * p.q_len * p.k_len;
}

void CpuBackend::attention_forward(const AttentionParams& p, DType act, const void* q_in, const void* k_in,
                                   const void* v_in, const float* bias_table, const int32_t* key_mask, void* out_in,
                                   float* probs) {
  require_f32_activations("attention_forward", act);
  const auto* q = static_cast<const float*>(q_in);
  const auto* k = static_cast<const float*>(k_in);
  const auto* v = static_cast<const float*>(v_in);
  auto* out = static_cast<float*>(out_in);
  const int64_t slices = p.batch * p.heads;
  const int64_t area = p.q_len * p.k_len;
  const std::vector<int> buckets = p.has_bias ? bucket_by_distance(p) : std::vector<int>();
#pragma omp parallel for schedule(static) if (parallel_over_slices(p))
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t b = slice / p.heads, h = slice % p.heads;
    const SliceView view = slice_view(p, b, h);
    float* scores = probs + slice * area;  // [q_len, k_len]: the scores, then the probabilities in place
    sgemm(false, true, p.q_len, p.k_len, p.head_dim, p.scale, q + view.q_offset, view.row_stride, k + view.k_offset,
          view.row_stride, 0.0f, scores, p.k_len);
    std::vector<float> bias_by_distance(buckets.size());  // [q_len + k_len - 1]: this head's bias per offset
    for (size_t d = 0; d < buckets.size(); ++d) bias_by_distance[d] = bias_table[buckets[d] * p.heads + h];
    for (int64_t i = 0; i < p.q_len; ++i) {
      float* row = scores + i * p.k_len;
      if (p.has_bias) {
        const float* bias_row = bias_by_distance.data() + (p.q_len - 1 - i);  // bias_row[j]: key j, query i
        for (int64_t j = 0; j < p.k_len; ++j) row[j] += bias_row[j];
      }
      float max_score = -INFINITY;
      bool any_visible = false;
      for (int64_t j = 0; j < p.k_len; ++j) {
        if (is_masked(p, key_mask, b, i, j)) continue;
        any_visible = true;
        max_score = std::fmax(max_score, row[j]);
      }
      if (!any_visible) {
        // Every key masked: transformers adds finfo.min to every score, which in fp32 makes
        // them all equal, i.e. a uniform row. It is a constant, so backward sends it nothing.
        for (int64_t j = 0; j < p.k_len; ++j) row[j] = 1.0f / static_cast<float>(p.k_len);
        continue;
      }
      // Masked keys get exactly 0 (not exp(-huge)), and the max over visible keys keeps
      // every exponent <= 0.
      float sum = 0.0f;
      for (int64_t j = 0; j < p.k_len; ++j) {
        row[j] = is_masked(p, key_mask, b, i, j) ? 0.0f : flush_subnormal(std::exp(row[j] - max_score));
        sum += row[j];
      }
      const float inverse = 1.0f / sum;
      for (int64_t j = 0; j < p.k_len; ++j) row[j] *= inverse;
    }
    float* context = out + view.q_offset;
    const float* weights = scores;  // what multiplies v: P, or its dropped-out copy
    std::vector<float> dropped;     // [q_len, k_len], only with dropout (probs keeps P itself)
    if (p.dropout.p > 0.0f) {
      dropped.resize(static_cast<size_t>(area));
      slice_dropout_multipliers(p, b, h, dropped.data());
      for (int64_t e = 0; e < area; ++e) dropped[static_cast<size_t>(e)] *= scores[e];
      weights = dropped.data();
    }
    sgemm(false, false, p.q_len, p.head_dim, p.k_len, 1.0f, weights, p.k_len, v + view.k_offset, view.row_stride,
          0.0f, context, view.row_stride);
  }
}

void CpuBackend::attention_backward(const AttentionParams& p, DType act, const void* dout_in, const void* q_in,
                                    const void* k_in, const void* v_in,
                                    const void* /*out: the saved probabilities give D directly*/,
                                    const float* /*bias_table: the saved probabilities already hold it*/,
                                    const int32_t* key_mask, const float* probs, void* dq_in, void* dk_in,
                                    void* dv_in, float* dbias_table) {
  require_f32_activations("attention_backward", act);
  const auto* dout = static_cast<const float*>(dout_in);
  const auto* q = static_cast<const float*>(q_in);
  const auto* k = static_cast<const float*>(k_in);
  const auto* v = static_cast<const float*>(v_in);
  auto* dq = static_cast<float*>(dq_in);
  auto* dk = static_cast<float*>(dk_in);
  auto* dv = static_cast<float*>(dv_in);
  const int64_t slices = p.batch * p.heads;
  const int64_t area = p.q_len * p.k_len;
  const bool want_dbias = dbias_table != nullptr && p.has_bias;
  // Each slice sums its dS along every key - query offset into its own row here; the fold
  // into [num_buckets, heads] happens serially below, because several offsets share a bucket
  // and all batch items share a head's column: accumulating into the table from parallel
  // slices would race. The serial fold is also deterministic (fixed summation order).
  const int64_t distances = distance_count(p);
  std::vector<double> dscore_by_distance(want_dbias ? static_cast<size_t>(slices * distances) : 0,
                                         0.0);  // [slices, q_len + k_len - 1]
#pragma omp parallel for schedule(static) if (parallel_over_slices(p))
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t b = slice / p.heads, h = slice % p.heads;
    const SliceView view = slice_view(p, b, h);
    const float* prob = probs + slice * area;                  // [q_len, k_len], pre-dropout
    std::vector<float> multiplier(static_cast<size_t>(area));  // [q_len, k_len]: 0 or 1 / (1 - p)
    std::vector<float> dropped(static_cast<size_t>(area));     // [q_len, k_len]: P after dropout
    slice_dropout_multipliers(p, b, h, multiplier.data());
    for (int64_t e = 0; e < area; ++e) dropped[static_cast<size_t>(e)] = prob[e] * multiplier[static_cast<size_t>(e)];
    const float* dcontext = dout + view.q_offset;
    // dV = P_dropped^T dO
    sgemm(true, false, p.k_len, p.head_dim, p.q_len, 1.0f, dropped.data(), p.k_len, dcontext, view.row_stride, 0.0f,
          dv + view.k_offset, view.row_stride);
    // dP_dropped = dO V^T, computed into the dS buffer and turned into dS row by row.
    std::vector<float> dscores(static_cast<size_t>(area));  // [q_len, k_len]
    sgemm(false, true, p.q_len, p.k_len, p.head_dim, 1.0f, dcontext, view.row_stride, v + view.k_offset,
          view.row_stride, 0.0f, dscores.data(), p.k_len);
    for (int64_t i = 0; i < p.q_len; ++i) {
      float* drow = dscores.data() + i * p.k_len;
      const float* prow = prob + i * p.k_len;
      const float* mrow = multiplier.data() + i * p.k_len;
      // A fully masked row is a constant (uniform) and gets no gradient. Decided from the
      // mask, not from the probabilities, so a visible row that happens to be uniform still does.
      bool all_masked = true;
      for (int64_t j = 0; j < p.k_len && all_masked; ++j) all_masked = is_masked(p, key_mask, b, i, j);
      if (all_masked) {
        std::fill_n(drow, p.k_len, 0.0f);
        continue;
      }
      // dP = dP_dropped * multiplier; dS = P (dP - sum_j dP_j P_j). Masked keys have P = 0,
      // hence dS = 0.
      float dot = 0.0f;
      for (int64_t j = 0; j < p.k_len; ++j) {
        drow[j] *= mrow[j];
        dot += drow[j] * prow[j];
      }
      for (int64_t j = 0; j < p.k_len; ++j) drow[j] = prow[j] * (drow[j] - dot);
    }
    // dQ = scale dS K ; dK = scale dS^T Q
    sgemm(false, false, p.q_len, p.head_dim, p.k_len, p.scale, dscores.data(), p.k_len, k + view.k_offset,
          view.row_stride, 0.0f, dq + view.q_offset, view.row_stride);
    sgemm(true, false, p.k_len, p.head_dim, p.q_len, p.scale, dscores.data(), p.k_len, q + view.q_offset,
          view.row_stride, 0.0f, dk + view.k_offset, view.row_stride);
    if (want_dbias) {
      double* by_distance = dscore_by_distance.data() + slice * distances;  // this slice's row only
      for (int64_t i = 0; i < p.q_len; ++i) {
        const float* drow = dscores.data() + i * p.k_len;
        double* offsets = by_distance + (p.q_len - 1 - i);  // offsets[j]: key j, query i
        for (int64_t j = 0; j < p.k_len; ++j) offsets[j] += drow[j];
      }
    }
  }
  if (!want_dbias) return;
  // dbias[bucket, head] += sum over batch and over the offsets in that bucket (accumulated:
  // the table is shared by every layer of a stack).
  const std::vector<int> buckets = bucket_by_distance(p);
  std::vector<double> table_sum(static_cast<size_t>(p.num_buckets * p.heads), 0.0);  // [num_buckets, heads]
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int64_t h = slice % p.heads;
    const double* by_distance = dscore_by_distance.data() + slice * distances;
    for (int64_t d = 0; d < distances; ++d) {
      table_sum[static_cast<size_t>(buckets[static_cast<size_t>(d)] * p.heads + h)] += by_distance[d];
    }
  }
  for (size_t e = 0; e < table_sum.size(); ++e) dbias_table[e] += static_cast<float>(table_sum[e]);
}

}  // namespace la3
