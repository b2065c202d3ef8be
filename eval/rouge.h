// ROUGE-1, ROUGE-2 and ROUGE-L F-measures as Google's rouge-score package computes them
// without stemming: lowercase, every run of characters other than [a-z0-9] becomes a
// separator, n-gram overlap (1, 2) and longest common subsequence (L).
#pragma once

#include <string>
#include <vector>

namespace la3 {

struct RougeScores {
  double rouge1 = 0.0, rouge2 = 0.0, rougeL = 0.0;  // F-measures
};

// rouge-score's tokenizer (ASCII lowercase; non-ASCII characters act as separators).
std::vector<std::string> rouge_tokens(const std::string& text);

RougeScores rouge(const std::string& target, const std::string& prediction);

}  // namespace la3
