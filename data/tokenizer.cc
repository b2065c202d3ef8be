#include "data/tokenizer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "data/sentencepiece_wrapper.h"

namespace la3 {

Tokenizer::Tokenizer(std::unique_ptr<spm::Processor> processor, TokenizerOptions options, std::string path)
    : processor_(std::move(processor)), options_(options), path_(std::move(path)) {
  piece_count_ = processor_->piece_count();
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<Tokenizer> Tokenizer::load(const std::string& model_path, const TokenizerOptions& options) {
  if (options.extra_ids < 0) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer: extra_ids must be >= 0, got ", options.extra_ids));
  }
  if (!std::filesystem::exists(model_path)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": no such SentencePiece model file"));
  }
  auto processor = std::make_unique<spm::Processor>();
  if (const std::string error = processor->load(model_path); !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": not a SentencePiece model: ", error));
  }
  if (processor->pad_id() != 0 || processor->eos_id() != 1 || processor->unk_id() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        model_path, ": T5 needs pad 0, eos 1, unk 2 but this model has pad ", processor->pad_id(), ", eos ",
        processor->eos_id(), ", unk ", processor->unk_id(), " (train one with `engine tokenizer train`)"));
  }
  return Tokenizer(std::move(processor), options, model_path);
}

absl::StatusOr<std::vector<int64_t>> Tokenizer::encode(const std::string& text) const {
  std::vector<int> pieces;
  if (const std::string error = processor_->encode(text, pieces); !error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer ", path_, ": cannot encode text: ", error));
  }
  std::vector<int64_t> ids(pieces.begin(), pieces.end());
  if (options_.add_eos) ids.push_back(eos_id());
  return ids;
}

absl::StatusOr<std::string> Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special,
                                              int64_t* beyond_vocabulary) const {
  std::string text;
  std::vector<int> pieces;  // SentencePiece ids not decoded yet
  auto flush = [&]() -> absl::Status {
    if (pieces.empty()) return absl::OkStatus();
    std::string segment;
    if (const std::string error = processor_->decode(pieces, segment); !error.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer ", path_, ": cannot decode: ", error));
    }
    text += segment;
    pieces.clear();
    return absl::OkStatus();
  };
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0) {
      return absl::OutOfRangeError(absl::StrCat("tokenizer ", path_, ": id ", id, " at position ", i, " is negative"));
    }
    if (id >= vocab_size()) {  // an embedding row past the tokenizer: no text
      if (beyond_vocabulary != nullptr) ++*beyond_vocabulary;
      continue;
    }
    const bool sentinel = id >= piece_count_;
    if (skip_special && (id == pad_id() || id == eos_id() || sentinel)) continue;
    if (sentinel) {  // no SentencePiece surface form: its added-token text
      if (absl::Status s = flush(); !s.ok()) return s;
      text += id_to_piece(id);
      continue;
    }
    pieces.push_back(static_cast<int>(id));
  }
  if (absl::Status s = flush(); !s.ok()) return s;
  return text;
}

std::string Tokenizer::id_to_piece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  if (id >= piece_count_) return absl::StrCat("<extra_id_", vocab_size() - 1 - id, ">");
  return processor_->id_to_piece(static_cast<int>(id));
}

absl::Status train_tokenizer(const std::string& corpus_path, const std::string& model_prefix,
                             const TokenizerTrainOptions& options) {
  if (!std::filesystem::exists(corpus_path)) {
    return absl::NotFoundError(absl::StrCat(corpus_path, ": no such corpus file"));
  }
  if (options.vocab_size < 8) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer train: vocab_size must be >= 8, got ", options.vocab_size));
  }
  if (options.model_type != "unigram" && options.model_type != "bpe") {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer train: model_type must be unigram or bpe, got ", options.model_type));
  }
  const std::string error = spm::train(corpus_path, model_prefix, options.vocab_size, options.character_coverage,
                                       options.model_type);
  if (!error.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer train on ", corpus_path, ": ", error));
  }
  return absl::OkStatus();
}

}  // namespace la3
