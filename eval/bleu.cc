#include "eval/bleu.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace la3 {

namespace {

std::map<Tokens, int64_t> ngram_counts(const Tokens& tokens, size_t n) {
  std::map<Tokens, int64_t> counts;
  for (size_t i = 0; i + n <= tokens.size(); ++i) ++counts[Tokens(tokens.begin() + static_cast<long>(i), tokens.begin() + static_cast<long>(i + n))];
  return counts;
}

}  // namespace

Tokens character_tokens(const std::string& text) {
  Tokens tokens;
  for (char c : text) tokens.emplace_back(1, c);
  return tokens;
}

double corpus_bleu(const std::vector<Tokens>& references, const std::vector<Tokens>& hypotheses,
                   const std::vector<double>& weights) {
  const size_t orders = weights.size();
  std::vector<int64_t> matched(orders, 0), total(orders, 0);
  int64_t hypothesis_length = 0, reference_length = 0;
  for (size_t row = 0; row < hypotheses.size() && row < references.size(); ++row) {
    const Tokens& hypothesis = hypotheses[row];
    const Tokens& reference = references[row];
    hypothesis_length += static_cast<int64_t>(hypothesis.size());
    reference_length += static_cast<int64_t>(reference.size());
    for (size_t n = 1; n <= orders; ++n) {
      const std::map<Tokens, int64_t> hypothesis_counts = ngram_counts(hypothesis, n);
      const std::map<Tokens, int64_t> reference_counts = ngram_counts(reference, n);
      for (const auto& [ngram, count] : hypothesis_counts) {
        auto found = reference_counts.find(ngram);
        matched[n - 1] += std::min(count, found == reference_counts.end() ? int64_t{0} : found->second);
      }
      // nltk's denominator is max(1, number of hypothesis n-grams).
      total[n - 1] += std::max<int64_t>(1, static_cast<int64_t>(hypothesis.size()) - static_cast<int64_t>(n) + 1);
    }
  }
  // nltk returns 0 when no unigram matches at all, and method0 turns any empty order into 0.
  for (size_t n = 0; n < orders; ++n) {
    if (matched[n] == 0) return 0.0;
  }
  double log_sum = 0.0;
  for (size_t n = 0; n < orders; ++n) {
    log_sum += weights[n] * std::log(static_cast<double>(matched[n]) / static_cast<double>(total[n]));
  }
  double brevity = 1.0;
  if (hypothesis_length == 0) return 0.0;
  if (hypothesis_length < reference_length) {
    brevity = std::exp(1.0 - static_cast<double>(reference_length) / static_cast<double>(hypothesis_length));
  }
  return brevity * std::exp(log_sum);
}

}  // namespace la3
