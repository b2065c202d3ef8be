#include "data/sentencepiece_wrapper.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

namespace la3::spm {

struct Processor::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

Processor::Processor() : impl_(std::make_unique<Impl>()) {}
Processor::~Processor() = default;

std::string Processor::load(const std::string& model_path) {
  const auto status = impl_->processor.Load(model_path);
  return status.ok() ? std::string() : status.ToString();
}

std::string Processor::encode(const std::string& text, std::vector<int>& ids) const {
  const auto status = impl_->processor.Encode(text, &ids);
  return status.ok() ? std::string() : status.ToString();
}

std::string Processor::decode(const std::vector<int>& ids, std::string& text) const {
  const auto status = impl_->processor.Decode(ids, &text);
  return status.ok() ? std::string() : status.ToString();
}

int Processor::piece_count() const { return impl_->processor.GetPieceSize(); }
int Processor::unk_id() const { return impl_->processor.unk_id(); }
int Processor::pad_id() const { return impl_->processor.pad_id(); }
int Processor::eos_id() const { return impl_->processor.eos_id(); }
std::string Processor::id_to_piece(int id) const { return impl_->processor.IdToPiece(id); }
int Processor::piece_to_id(const std::string& piece) const { return impl_->processor.PieceToId(piece); }

std::string train(const std::string& input_path, const std::string& model_prefix, int vocab_size,
                  double character_coverage, const std::string& model_type) {
  // The keyword form: paths may contain spaces or '=' that a flag string would split.
  const std::unordered_map<std::string, std::string> arguments = {
      {"input", input_path},
      {"model_prefix", model_prefix},
      {"vocab_size", std::to_string(vocab_size)},
      {"character_coverage", std::to_string(character_coverage)},
      {"model_type", model_type},
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"unk_id", "2"},
      {"bos_id", "-1"},
      {"minloglevel", "2"},
      {"num_threads", "2"},
  };
  const auto status = sentencepiece::SentencePieceTrainer::Train(arguments);
  return status.ok() ? std::string() : status.ToString();
}

}  // namespace la3::spm
