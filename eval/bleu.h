// Corpus BLEU exactly as nltk.translate.bleu_score.corpus_bleu computes it with one
// reference per hypothesis and no smoothing (nltk 3.9): clipped n-gram counts summed over
// the corpus, corpus-level brevity penalty exp(1 - r / c) when c < r, geometric mean with
// the given weights. An n-gram order with no match makes the score 0 (nltk's method0 uses
// the smallest float there, which exponentiates to 0 as well).
#pragma once

#include <string>
#include <vector>

namespace la3 {

using Tokens = std::vector<std::string>;

double corpus_bleu(const std::vector<Tokens>& references, const std::vector<Tokens>& hypotheses,
                   const std::vector<double>& weights = {0.25, 0.25, 0.25, 0.25});

// One token per character (MolT5 scores SMILES this way).
Tokens character_tokens(const std::string& text);

}  // namespace la3
