// The T5 tokenizer: a SentencePiece model plus T5's conventions, as transformers'
// T5Tokenizer (slow, legacy) applies them: pad 0, eos 1, unk 2; `extra_ids` sentinel tokens
// <extra_id_0> .. <extra_id_{n-1}> occupy the ids just above the SentencePiece pieces in
// reverse order (<extra_id_0> is the last id); encode appends eos.
// For the released T5 vocabulary: 32000 pieces + 100 extra ids = 32100 tokens (the model's
// embedding has 32128 rows; the last 28 are never produced).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace la3 {

namespace spm {
class Processor;
}

struct TokenizerOptions {
  int extra_ids = 100;
  bool add_eos = true;
};

class Tokenizer {
 public:
  // Loads a SentencePiece .model file. The model must use T5's special ids (pad 0, eos 1,
  // unk 2); anything else is an error naming the file and the ids found.
  static absl::StatusOr<Tokenizer> load(const std::string& model_path, const TokenizerOptions& options = {});

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids (+ eos when options.add_eos). Thread-safe.
  absl::StatusOr<std::vector<int64_t>> encode(const std::string& text) const;
  // Ids -> text, as transformers' T5Tokenizer decodes. With skip_special, pad, eos and
  // sentinel ids are dropped (skip_special_tokens=True); without, sentinels read
  // "<extra_id_N>". A model may emit ids past the tokenizer (MolT5: 32,128 logits for 32,100
  // tokens): such ids decode as nothing and are counted in *beyond_vocabulary when given, never
  // an error. A negative id is an OutOfRange error (no model emits one).
  absl::StatusOr<std::string> decode(const std::vector<int64_t>& ids, bool skip_special = true,
                                     int64_t* beyond_vocabulary = nullptr) const;

  int64_t vocab_size() const { return piece_count_ + options_.extra_ids; }
  int64_t piece_count() const { return piece_count_; }
  int64_t pad_id() const { return 0; }
  int64_t eos_id() const { return 1; }
  int64_t unk_id() const { return 2; }
  // The piece of an id ("▁the", "<extra_id_3>", "</s>").
  std::string id_to_piece(int64_t id) const;
  const std::string& path() const { return path_; }

 private:
  Tokenizer(std::unique_ptr<spm::Processor> processor, TokenizerOptions options, std::string path);

  std::unique_ptr<spm::Processor> processor_;
  TokenizerOptions options_;
  std::string path_;
  int64_t piece_count_ = 0;
};

struct TokenizerTrainOptions {
  int vocab_size = 8000;
  double character_coverage = 1.0;  // SMILES and chemical names need every character
  std::string model_type = "unigram";
};

// Trains a SentencePiece model with T5's special ids from a text file (one sentence per
// line); writes <model_prefix>.model and <model_prefix>.vocab.
absl::Status train_tokenizer(const std::string& corpus_path, const std::string& model_prefix,
                             const TokenizerTrainOptions& options);

}  // namespace la3
