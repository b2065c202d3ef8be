// The k+1-caption losses on the CPU (docs/ARCHITECTURE.md): the readable reference of
// kernels/caption_loss.cuh. Vocabulary passes per token (sums of exponentials in double), the
// per-group combination entirely in double, in row order. Also the two device-scalar helpers
// of the loss reductions (sum_to_scalar, scale_by_device_scalar).
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/denormals.h"
#include "engine/cpu/parallel.h"

namespace la3 {

namespace {

// max and log(sum exp(z - max)) of one row of logits.
struct RowLse {
  float max_value;
  double log_sum;
};

RowLse row_lse(const float* z, int64_t vocab) {
  float max_value = -INFINITY;
  for (int64_t c = 0; c < vocab; ++c) max_value = std::fmax(max_value, z[c]);
  double sum = 0.0;
  for (int64_t c = 0; c < vocab; ++c) sum += std::exp(static_cast<double>(z[c] - max_value));
  return {max_value, std::log(sum)};
}

// log p(label) as (z[y] - max) - log(sum) (see cross_entropy_cpu.cc); 0 when ignored.
float token_log_prob(const float* z, const RowLse& lse, int64_t label, int64_t ignore_index) {
  if (label == ignore_index) return 0.0f;
  return static_cast<float>(static_cast<double>(z[label] - lse.max_value) - lse.log_sum);
}

// dz = coef * (softmax(z) - onehot(label)), softmax from the saved f32 lse; coef 0 -> zeros.
void write_gradient(const float* z, int64_t vocab, float lse, int64_t label, float coef, float* dz) {
  if (coef == 0.0f) {
    std::fill_n(dz, vocab, 0.0f);
    return;
  }
  for (int64_t c = 0; c < vocab; ++c) dz[c] = flush_subnormal(coef * std::exp(z[c] - lse));
  dz[label] -= coef;
}

// log(sum_j exp(x_j)) in double, stable.
double log_sum_exp(const std::vector<double>& values) {
  double max_value = -INFINITY;
  for (double v : values) max_value = std::max(max_value, v);
  if (max_value == -INFINITY) return -INFINITY;
  double sum = 0.0;
  for (double v : values) sum += std::exp(v - max_value);
  return max_value + std::log(sum);
}

}  // namespace

void CpuBackend::caption_loss_log_probs(const kernels::CaptionLossParams& p, DType act, const void* logits_in,
                                        const int64_t* labels, float* log_prob, float* lse) {
  require_f32_activations("caption_loss_log_probs", act);
  const float* logits = static_cast<const float*>(logits_in);
  const int64_t tokens = p.rows * p.length;
#pragma omp parallel for schedule(static) if (worth_parallel(tokens * p.vocab))
  for (int64_t i = 0; i < tokens; ++i) {
    const float* z = logits + i * p.vocab;
    const RowLse row = row_lse(z, p.vocab);
    lse[i] = row.max_value + static_cast<float>(row.log_sum);
    log_prob[i] = token_log_prob(z, row, labels[i], p.ignore_index);
  }
}

void CpuBackend::caption_loss_mean_fused(const kernels::CaptionLossParams& p, DType act, const void* logits_in,
                                         const int64_t* labels, float* log_prob, float* inverse_tokens,
                                         void* dlogits_out) {
  require_f32_activations("caption_loss_mean_fused", act);
  const float* logits = static_cast<const float*>(logits_in);
  float* dlogits = static_cast<float*>(dlogits_out);
  const int64_t tokens = p.rows * p.length;
  int64_t counted = 0;
  for (int64_t i = 0; i < tokens; ++i) counted += labels[i] != p.ignore_index ? 1 : 0;
  const double normaliser = p.normaliser > 0.0 ? p.normaliser : static_cast<double>(std::max<int64_t>(counted, 1));
  const float inverse = static_cast<float>(1.0 / normaliser);
  inverse_tokens[0] = inverse;
#pragma omp parallel for schedule(static) if (worth_parallel(tokens * p.vocab))
  for (int64_t i = 0; i < tokens; ++i) {
    const float* z = logits + i * p.vocab;
    const RowLse row = row_lse(z, p.vocab);
    const bool ignored = labels[i] == p.ignore_index;
    log_prob[i] = token_log_prob(z, row, labels[i], p.ignore_index);
    write_gradient(z, p.vocab, row.max_value + static_cast<float>(row.log_sum), labels[i], ignored ? 0.0f : inverse,
                   dlogits + i * p.vocab);
  }
}

void CpuBackend::caption_loss_combine(const kernels::CaptionLossParams& p, const float* log_prob,
                                      const int64_t* labels, const int64_t* group, float* token_weight, float* loss,
                                      float* inverse_tokens) {
  const int64_t length = p.length;
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(p.groups));
  for (int64_t r = 0; r < p.rows; ++r) members[static_cast<size_t>(group[r])].push_back(r);
  auto counted = [&](int64_t r, int64_t t) { return labels[r * length + t] != p.ignore_index; };
  auto lp = [&](int64_t r, int64_t t) { return static_cast<double>(log_prob[r * length + t]); };
  auto set_weight = [&](int64_t r, int64_t t, double w) {
    if (token_weight != nullptr) token_weight[r * length + t] = static_cast<float>(w);
  };

  double loss_sum = 0.0, tokens = 0.0;
  for (const std::vector<int64_t>& rows_of_g : members) {
    const double k_plus_one = static_cast<double>(rows_of_g.size());
    if (p.mode == kernels::CaptionLossMode::kMean) {
      // Every row its own example: -sum of log p over counted tokens.
      for (int64_t r : rows_of_g) {
        for (int64_t t = 0; t < length; ++t) {
          set_weight(r, t, counted(r, t) ? -1.0 : 0.0);
          if (!counted(r, t)) continue;
          loss_sum -= lp(r, t);
          tokens += 1.0;
        }
      }
    } else if (p.mode == kernels::CaptionLossMode::kTokenMixture) {
      // One target shared by the rows: L_g = -sum_t log((1/(k+1)) sum_j p_j(y_t)).
      const int64_t first = rows_of_g.front();
      for (int64_t t = 0; t < length; ++t) {
        if (!counted(first, t)) {
          for (int64_t r : rows_of_g) set_weight(r, t, 0.0);
          continue;
        }
        std::vector<double> values;
        for (int64_t r : rows_of_g) values.push_back(lp(r, t));
        const double total = log_sum_exp(values);
        loss_sum -= total - std::log(k_plus_one);
        tokens += 1.0;
        // d(-log p_t) / d log p_j = -p_j / sum_i p_i = -softmax_j(values).
        for (size_t j = 0; j < rows_of_g.size(); ++j) set_weight(rows_of_g[j], t, -std::exp(values[j] - total));
      }
    } else {
      // Targets of different lengths: s_j = sum_t log p_j, L_g = -log((1/(k+1)) sum_j exp(s_j)).
      std::vector<double> scores;
      double length_sum = 0.0;
      for (int64_t r : rows_of_g) {
        double s = 0.0;
        for (int64_t t = 0; t < length; ++t) {
          if (!counted(r, t)) continue;
          s += lp(r, t);
          length_sum += 1.0;
        }
        scores.push_back(s);
      }
      const double total = log_sum_exp(scores);
      loss_sum -= total - std::log(k_plus_one);
      tokens += length_sum / k_plus_one;
      for (size_t j = 0; j < rows_of_g.size(); ++j) {
        const double posterior = std::exp(scores[j] - total);  // softmax_j(s)
        for (int64_t t = 0; t < length; ++t) set_weight(rows_of_g[j], t, counted(rows_of_g[j], t) ? -posterior : 0.0);
      }
    }
  }
  // A caller-given normaliser (the global batch's) replaces the batch's own token count.
  const double normaliser = p.normaliser > 0.0 ? p.normaliser : tokens;
  loss[0] = normaliser > 0.0 ? static_cast<float>(loss_sum / normaliser) : 0.0f;
  inverse_tokens[0] = static_cast<float>(1.0 / (normaliser > 0.0 ? normaliser : 1.0));
}

void CpuBackend::caption_loss_backward(const kernels::CaptionLossParams& p, DType act, const void* logits_in,
                                       const int64_t* labels, const float* lse, const float* token_weight,
                                       const float* upstream, const float* inverse_tokens, void* dlogits_out) {
  require_f32_activations("caption_loss_backward", act);
  const float* logits = static_cast<const float*>(logits_in);
  float* dlogits = static_cast<float*>(dlogits_out);
  const int64_t tokens = p.rows * p.length;
#pragma omp parallel for schedule(static) if (worth_parallel(tokens * p.vocab))
  for (int64_t i = 0; i < tokens; ++i) {
    float coef = 0.0f;  // d / dz = coef * (softmax - onehot)
    if (labels[i] != p.ignore_index) {
      coef = -token_weight[i];
      if (upstream != nullptr) coef *= upstream[0];
      if (inverse_tokens != nullptr) coef *= inverse_tokens[0];
    }
    write_gradient(logits + i * p.vocab, p.vocab, lse[i], labels[i], coef, dlogits + i * p.vocab);
  }
}

void CpuBackend::sum_to_scalar(int64_t count, const float* x, double alpha, float* out) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += x[i];
  out[0] = static_cast<float>(alpha * sum);
}

void CpuBackend::scale_by_device_scalar(int64_t count, DType act, const float* scalar, void* x_inout) {
  require_f32_activations("scale_by_device_scalar", act);
  float* x = static_cast<float*>(x_inout);
  const float s = scalar[0];
  if (s == 1.0f) return;
  for (int64_t i = 0; i < count; ++i) x[i] *= s;
}

}  // namespace la3
