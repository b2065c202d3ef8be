#include "model/generation.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "engine/autograd/tape.h"
#include "engine/ops/attention.h"
#include "engine/ops/decoding.h"
#include "kernels/philox.cuh"
#include "model/t5_decoding.h"

namespace la3 {

namespace {

struct Hypothesis {
  double score;
  std::vector<int64_t> tokens;
};

// transformers' BeamHypotheses.
class BeamHypotheses {
 public:
  BeamHypotheses(int num_beams, double length_penalty, EarlyStopping early_stopping, int64_t max_length)
      : num_beams_(num_beams), length_penalty_(length_penalty), early_stopping_(early_stopping), max_length_(max_length) {}

  void add(std::vector<int64_t> tokens, double sum_logprobs, int64_t generated_length) {
    const double score = sum_logprobs / std::pow(static_cast<double>(generated_length), length_penalty_);
    if (static_cast<int>(beams_.size()) < num_beams_ || score > worst_score_) {
      beams_.push_back(Hypothesis{score, std::move(tokens)});
      if (static_cast<int>(beams_.size()) > num_beams_) {
        // Drop the worst; the new worst is the second smallest score (first in index order on ties).
        std::vector<size_t> order(beams_.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return beams_[a].score < beams_[b].score; });
        worst_score_ = beams_[order[1]].score;
        beams_.erase(beams_.begin() + static_cast<long>(order[0]));
      } else {
        worst_score_ = std::min(score, worst_score_);
      }
    }
  }

  bool is_done(double best_sum_logprobs, int64_t cur_len) const {
    if (static_cast<int>(beams_.size()) < num_beams_) return false;
    if (early_stopping_ == EarlyStopping::kTrue) return true;
    double highest;
    if (early_stopping_ == EarlyStopping::kNever && length_penalty_ > 0.0) {
      highest = best_sum_logprobs / std::pow(static_cast<double>(max_length_ - 1), length_penalty_);
    } else {
      highest = best_sum_logprobs / std::pow(static_cast<double>(cur_len - 1), length_penalty_);
    }
    return worst_score_ >= highest;
  }

  std::vector<Hypothesis>& beams() { return beams_; }

 private:
  int num_beams_;
  double length_penalty_;
  EarlyStopping early_stopping_;
  int64_t max_length_;
  double worst_score_ = 1e9;
  std::vector<Hypothesis> beams_;
};

absl::Status validate(const GenerationOptions& o, const T5Model& model, const Tensor& input_ids, const Tensor& mask) {
  if (!input_ids.defined() || input_ids.rank() != 2 || !is_integer(input_ids.dtype())) {
    return absl::InvalidArgumentError(absl::StrCat("generate: input_ids must be integer [batch, src_len], got ",
                                                   input_ids.describe()));
  }
  if (mask.defined() && mask.shape() != input_ids.shape()) {
    return absl::InvalidArgumentError(absl::StrCat("generate: attention_mask ", mask.describe(),
                                                   " does not match input_ids ", input_ids.describe()));
  }
  if (o.num_beams < 1) return absl::InvalidArgumentError("generate: num_beams must be >= 1");
  if (o.num_return_sequences < 1 || o.num_return_sequences > o.num_beams) {
    return absl::InvalidArgumentError(absl::StrCat("generate: num_return_sequences (", o.num_return_sequences,
                                                   ") must be between 1 and num_beams (", o.num_beams, ")"));
  }
  if (o.do_sample && o.num_beams != 1) return absl::InvalidArgumentError("generate: sampling needs num_beams = 1");
  if (o.do_sample && (o.temperature <= 0.0 || o.top_p <= 0.0 || o.top_p > 1.0 || o.top_k < 0)) {
    return absl::InvalidArgumentError("generate: temperature must be > 0, top_p in (0, 1], top_k >= 0");
  }
  if (o.repetition_penalty <= 0.0) return absl::InvalidArgumentError("generate: repetition_penalty must be > 0");
  if (o.no_repeat_ngram_size < 0 || o.min_length < 0) {
    return absl::InvalidArgumentError("generate: no_repeat_ngram_size and min_length must be >= 0");
  }
  const int64_t max_length = o.max_new_tokens > 0 ? 1 + o.max_new_tokens : o.max_length;
  if (max_length < 2) return absl::InvalidArgumentError("generate: max_length must be >= 2 (start token + 1)");
  if (model.config().eos_token_id >= model.config().vocab_size) {
    return absl::InvalidArgumentError("generate: eos_token_id outside the vocabulary");
  }
  return absl::OkStatus();
}

// Picks one of a row's candidates (its top_k processed scores already divided by the
// temperature, best first: transformers' order is temperature, top-k, top-p) by top-p and a
// Philox draw keyed by (seed, step, row). Returns the candidate's position.
size_t sample_candidate(const GenerationOptions& o, const float* scores, size_t count, uint64_t step, uint32_t row) {
  size_t keep = count;
  const double max_score = scores[0];
  std::vector<double> probs(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += probs[i] = std::exp(scores[i] - max_score);
  if (o.top_p < 1.0) {
    double cumulative = 0.0;
    for (size_t i = 0; i < keep; ++i) {
      cumulative += probs[i] / total;
      if (cumulative >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = std::accumulate(probs.begin(), probs.begin() + static_cast<long>(keep), 0.0);
  }
  const double draw = kernels::philox_uniform(o.seed, step, row, 0) * total;
  double cumulative = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[i];
    if (draw < cumulative) return i;
  }
  return keep - 1;
}

// What a step reads back: the k best of each group, best first.
struct Selection {
  std::vector<int64_t> indices;   // [groups * k]
  std::vector<float> values;      // [groups * k] the processed scores (when asked for)
  std::vector<float> log_probs;   // [groups * k] log_softmax(logits) at the indices (when asked for)
};

// The next-token selection of one step on the model's device: the logits processors (on
// log-probabilities plus the beam scores for beam search, on the logits for greedy search
// and sampling) and top-k over `groups` rows of the processed [rows, vocab] scores. history
// holds every row's tokens so far; rows shorter than the longest (finished greedy rows,
// whose scores are ignored) are padded with their last token.
Selection select_on_device(const Tensor& logits, const std::vector<std::vector<int64_t>>& history,
                           const Tensor& beam_scores, const GenerationOptions& o, int64_t eos, int64_t groups, int64_t k,
                           bool want_values, bool want_log_probs) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  size_t length = 0;
  for (const auto& h : history) length = std::max(length, h.size());
  std::vector<int64_t> flat;
  flat.reserve(static_cast<size_t>(rows) * length);
  for (const auto& h : history) {
    flat.insert(flat.end(), h.begin(), h.end());
    flat.insert(flat.end(), length - h.size(), h.back());
  }
  ops::LogitsProcessing processing;
  processing.log_softmax = beam_scores.defined();
  processing.want_log_probs = want_log_probs;
  processing.repetition_penalty = static_cast<float>(o.repetition_penalty);
  processing.no_repeat_ngram = o.no_repeat_ngram_size;
  processing.ban_eos = static_cast<int64_t>(length) < o.min_length;
  processing.eos = eos;
  processing.temperature = o.do_sample ? o.temperature : 1.0;
  const ops::ProcessedLogits processed = ops::process_logits(
      logits, Tensor::from_vector<int64_t>({rows, static_cast<int64_t>(length)}, flat, logits.device()), beam_scores,
      processing);
  const int64_t n = rows * vocab / groups;
  const ops::TopK top = ops::top_k(processed.scores.view({groups, n}), k,
                                   want_log_probs ? processed.log_probs.view({groups, n}) : Tensor());
  Selection selection;
  selection.indices = top.indices.to_vector<int64_t>();
  if (want_values) selection.values = top.values.to_vector<float>();
  if (want_log_probs) selection.log_probs = top.companion.to_vector<float>();
  return selection;
}

std::vector<std::vector<GeneratedSequence>> greedy(const T5Model& model, T5DecodingCache& cache, int64_t batch,
                                                   int64_t max_length, const GenerationOptions& o) {
  const T5Config& c = model.config();
  const T5Decoder decoder(model);
  std::vector<std::vector<int64_t>> tokens(static_cast<size_t>(batch), {c.decoder_start_token_id});
  std::vector<double> scores(static_cast<size_t>(batch), 0.0);
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  for (int64_t length = 1; length < max_length; ++length) {
    std::vector<int64_t> last;
    for (const auto& t : tokens) last.push_back(t.back());
    const Tensor logits = decoder.step(cache, last);
    const int64_t vocab = logits.size(1);
    // Sampling needs the top_k candidates (the whole vocabulary when top_k is 0), greedy
    // search the best one; the score adds the chosen token's log-probability.
    const int64_t k = !o.do_sample ? 1 : o.top_k > 0 ? std::min<int64_t>(o.top_k, vocab) : vocab;
    const Selection selection = select_on_device(logits, tokens, Tensor(), o, c.eos_token_id, batch, k,
                                                 /*want_values=*/o.do_sample, /*want_log_probs=*/true);
    bool all_done = true;
    for (int64_t r = 0; r < batch; ++r) {
      if (finished[static_cast<size_t>(r)]) continue;
      const size_t first = static_cast<size_t>(r * k);
      const size_t chosen =
          first + (o.do_sample ? sample_candidate(o, selection.values.data() + first, static_cast<size_t>(k),
                                                  static_cast<uint64_t>(length), static_cast<uint32_t>(r))
                               : 0);
      const int64_t next = selection.indices[chosen];
      if (next < 0) Fail(ErrorKind::kInternal, "generate: no finite score in row ", r);
      tokens[static_cast<size_t>(r)].push_back(next);
      scores[static_cast<size_t>(r)] += selection.log_probs[chosen];
      if (next == c.eos_token_id) finished[static_cast<size_t>(r)] = true;
      all_done = all_done && finished[static_cast<size_t>(r)];
    }
    if (all_done) break;
  }
  std::vector<std::vector<GeneratedSequence>> out;
  for (int64_t r = 0; r < batch; ++r) out.push_back({GeneratedSequence{tokens[static_cast<size_t>(r)], scores[static_cast<size_t>(r)]}});
  return out;
}

std::vector<std::vector<GeneratedSequence>> beam_search(const T5Model& model, T5DecodingCache& cache, int64_t batch,
                                                        int64_t max_length, const GenerationOptions& o) {
  const T5Config& c = model.config();
  const T5Decoder decoder(model);
  const int beams = o.num_beams;
  const int64_t rows = batch * beams;
  std::vector<std::vector<int64_t>> tokens(static_cast<size_t>(rows), {c.decoder_start_token_id});
  std::vector<float> beam_scores(static_cast<size_t>(rows), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    if (r % beams != 0) beam_scores[static_cast<size_t>(r)] = -1e9f;
  }
  std::vector<BeamHypotheses> hypotheses;
  for (int64_t b = 0; b < batch; ++b) hypotheses.emplace_back(beams, o.length_penalty, o.early_stopping, max_length);
  std::vector<bool> done(static_cast<size_t>(batch), false);
  int64_t cur_len = 1;
  while (true) {
    std::vector<int64_t> last;
    for (const auto& t : tokens) last.push_back(t.back());
    const Tensor logits = decoder.step(cache, last);
    const int64_t vocab = logits.size(1);
    const int64_t keep = 2 * beams;  // max(2, 1 + number of eos tokens) * num_beams
    // Top 2 * beams over each input's [beams * vocab] scores (torch.topk, sorted; ties by
    // lower index), computed on the model's device.
    const Selection selection =
        select_on_device(logits, tokens, Tensor::from_vector<float>({rows}, beam_scores, logits.device()), o,
                         c.eos_token_id, batch, keep, /*want_values=*/true, /*want_log_probs=*/false);
    std::vector<int64_t> next_rows(static_cast<size_t>(rows)), next_tokens(static_cast<size_t>(rows));
    std::vector<float> next_scores(static_cast<size_t>(rows));
    for (int64_t b = 0; b < batch; ++b) {
      if (done[static_cast<size_t>(b)]) {
        for (int k = 0; k < beams; ++k) {
          const size_t r = static_cast<size_t>(b * beams + k);
          next_scores[r] = 0.0f;
          next_tokens[r] = c.pad_token_id;
          next_rows[r] = b * beams;
        }
        continue;
      }
      const int64_t* candidates = selection.indices.data() + b * keep;
      const float* candidate_scores = selection.values.data() + b * keep;
      int filled = 0;
      for (int64_t rank = 0; rank < keep && filled < beams; ++rank) {
        const int64_t flat = candidates[rank];
        if (flat < 0) Fail(ErrorKind::kInternal, "generate: no finite score for input ", b);
        const int64_t beam = flat / vocab, token = flat % vocab;
        const float score = candidate_scores[rank];
        const int64_t source_row = b * beams + beam;
        if (token == c.eos_token_id) {
          if (rank >= beams) continue;
          hypotheses[static_cast<size_t>(b)].add(tokens[static_cast<size_t>(source_row)], score, cur_len);
        } else {
          const size_t r = static_cast<size_t>(b * beams + filled);
          next_scores[r] = score;
          next_tokens[r] = token;
          next_rows[r] = source_row;
          ++filled;
        }
      }
      done[static_cast<size_t>(b)] =
          hypotheses[static_cast<size_t>(b)].is_done(candidate_scores[0], cur_len + 1);
    }
    // cur_len + 1: transformers' scorer counts the token being chosen.
    std::vector<std::vector<int64_t>> new_tokens;
    for (int64_t r = 0; r < rows; ++r) {
      new_tokens.push_back(tokens[static_cast<size_t>(next_rows[static_cast<size_t>(r)])]);
      new_tokens.back().push_back(next_tokens[static_cast<size_t>(r)]);
    }
    tokens = std::move(new_tokens);
    beam_scores = next_scores;
    T5Decoder::reorder(cache, next_rows);
    ++cur_len;
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; }) || cur_len >= max_length) break;
  }
  std::vector<std::vector<GeneratedSequence>> out;
  for (int64_t b = 0; b < batch; ++b) {
    BeamHypotheses& hyps = hypotheses[static_cast<size_t>(b)];
    if (!done[static_cast<size_t>(b)]) {
      for (int k = 0; k < beams; ++k) {
        const size_t r = static_cast<size_t>(b * beams + k);
        hyps.add(tokens[r], beam_scores[r], static_cast<int64_t>(tokens[r].size()) - 1);
      }
    }
    std::vector<Hypothesis> sorted = hyps.beams();
    std::stable_sort(sorted.begin(), sorted.end(), [](const Hypothesis& x, const Hypothesis& y) { return x.score < y.score; });
    if (o.is_valid) {
      // Invalid hypotheses move to the front (popped last); order by score is kept within
      // each group.
      std::stable_partition(sorted.begin(), sorted.end(), [&](const Hypothesis& h) { return !o.is_valid(h.tokens); });
    }
    std::vector<GeneratedSequence> best;
    for (int j = 0; j < o.num_return_sequences && !sorted.empty(); ++j) {
      Hypothesis h = sorted.back();
      sorted.pop_back();
      // transformers appends eos when it fits in max_length.
      if (static_cast<int64_t>(h.tokens.size()) < max_length) h.tokens.push_back(c.eos_token_id);
      best.push_back(GeneratedSequence{h.tokens, h.score});
    }
    out.push_back(std::move(best));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<std::vector<GeneratedSequence>>> generate(const T5Model& model, const Tensor& input_ids,
                                                                     const Tensor& attention_mask,
                                                                     const GenerationOptions& options) {
  if (absl::Status s = validate(options, model, input_ids, attention_mask); !s.ok()) return s;
  try {
    NoGradGuard no_grad;
    const int64_t max_length = options.max_new_tokens > 0 ? 1 + options.max_new_tokens : options.max_length;
    // Inputs follow the model to its device; the mask as the key flags attention reads,
    // made on the host once (the encoder and every decoding step use them as they are).
    const Tensor ids = input_ids.to_device(model.device());
    const Tensor mask = attention_mask.defined()
                            ? ops::key_mask_as_flags(attention_mask.to_device(Device::cpu())).to_device(model.device())
                            : Tensor();
    const Tensor encoded = model.encode(ids, mask, {});
    // Every step decodes one position: max_length - 1 of them after the start token.
    T5DecodingCache cache = T5Decoder(model).start(encoded, mask, options.num_beams, max_length - 1);
    if (options.num_beams == 1) return greedy(model, cache, input_ids.size(0), max_length, options);
    return beam_search(model, cache, input_ids.size(0), max_length, options);
  } catch (const std::exception& error) {
    return StatusFromException(error);
  }
}

}  // namespace la3
