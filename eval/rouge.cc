#include "eval/rouge.h"

#include <algorithm>
#include <map>

namespace la3 {

std::vector<std::string> rouge_tokens(const std::string& text) {
  std::vector<std::string> tokens;
  std::string current;
  for (unsigned char c : text) {
    const char lower = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if ((lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9')) {
      current.push_back(lower);
    } else if (!current.empty()) {
      tokens.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

namespace {

double fmeasure(double precision, double recall) {
  return precision + recall > 0.0 ? 2.0 * precision * recall / (precision + recall) : 0.0;
}

double ngram_f(const std::vector<std::string>& target, const std::vector<std::string>& prediction, size_t n) {
  auto count = [n](const std::vector<std::string>& tokens) {
    std::map<std::vector<std::string>, int> counts;
    for (size_t i = 0; i + n <= tokens.size(); ++i) ++counts[{tokens.begin() + static_cast<long>(i), tokens.begin() + static_cast<long>(i + n)}];
    return counts;
  };
  const auto target_counts = count(target), prediction_counts = count(prediction);
  int overlap = 0, target_total = 0, prediction_total = 0;
  for (const auto& [gram, c] : target_counts) {
    target_total += c;
    auto found = prediction_counts.find(gram);
    if (found != prediction_counts.end()) overlap += std::min(c, found->second);
  }
  for (const auto& entry : prediction_counts) prediction_total += entry.second;
  return fmeasure(static_cast<double>(overlap) / std::max(prediction_total, 1),
                  static_cast<double>(overlap) / std::max(target_total, 1));
}

double lcs_f(const std::vector<std::string>& target, const std::vector<std::string>& prediction) {
  if (target.empty() || prediction.empty()) return 0.0;
  std::vector<int> previous(prediction.size() + 1, 0), current(prediction.size() + 1, 0);
  for (size_t i = 1; i <= target.size(); ++i) {
    for (size_t j = 1; j <= prediction.size(); ++j) {
      current[j] = target[i - 1] == prediction[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], current[j - 1]);
    }
    std::swap(previous, current);
  }
  const double lcs = previous[prediction.size()];
  return fmeasure(lcs / static_cast<double>(prediction.size()), lcs / static_cast<double>(target.size()));
}

}  // namespace

RougeScores rouge(const std::string& target, const std::string& prediction) {
  const std::vector<std::string> t = rouge_tokens(target), p = rouge_tokens(prediction);
  return RougeScores{ngram_f(t, p, 1), ngram_f(t, p, 2), lcs_f(t, p)};
}

}  // namespace la3
