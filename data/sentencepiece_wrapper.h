// The only code that touches libsentencepiece. docs/BUILD.md pitfall 7: sentencepiece 0.1.97
// and Debian's Abseil both define absl::string_view, so this header and its .cc include no
// Abseil header and speak plain std types; data/tokenizer.h builds the Status API on top.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace la3::spm {

class Processor {
 public:
  Processor();
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Returns an empty string on success, else the error text.
  std::string load(const std::string& model_path);

  // Thread-safe after load (sentencepiece's Encode/Decode are const on a loaded model).
  std::string encode(const std::string& text, std::vector<int>& ids) const;
  std::string decode(const std::vector<int>& ids, std::string& text) const;

  int piece_count() const;
  int unk_id() const;
  int pad_id() const;
  int eos_id() const;
  std::string id_to_piece(int id) const;
  int piece_to_id(const std::string& piece) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Trains a unigram model (sentencepiece_trainer) from a text file, one sentence per line,
// with T5's special ids: pad 0, eos 1, unk 2, no bos. Writes <model_prefix>.model/.vocab.
// Returns an empty string on success, else the error text.
std::string train(const std::string& input_path, const std::string& model_prefix, int vocab_size,
                  double character_coverage, const std::string& model_type);

}  // namespace la3::spm
