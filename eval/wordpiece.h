// BERT's uncased tokenisation (BasicTokenizer + WordpieceTokenizer of transformers), used by
// MolT5's text BLEU: clean control characters, space out CJK characters, lowercase, strip
// accents (NFD, drop combining marks), split on punctuation, then greedy longest-match-first
// WordPiece with "##" continuations; a word without a full match, or longer than 100
// characters, becomes [UNK]. The vocabulary is a BERT vocab.txt (SciBERT's
// scivocab_uncased for MolT5), given by the user.
#pragma once

#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/statusor.h"

namespace la3 {

class WordPieceTokenizer {
 public:
  static absl::StatusOr<WordPieceTokenizer> load(const std::string& vocab_path);
  static WordPieceTokenizer from_tokens(const std::vector<std::string>& vocabulary);

  // Text -> WordPiece tokens (no [CLS]/[SEP]).
  std::vector<std::string> tokenize(const std::string& text) const;

  // The BasicTokenizer stage alone: words and punctuation after cleaning and lowercasing.
  static std::vector<std::string> basic_tokens(const std::string& text);

 private:
  std::unordered_set<std::string> vocabulary_;
};

}  // namespace la3
