// LA3 decoder: translate between captions and SMILES with a trained checkpoint from your
// own C++ program.
//
//   #include <la3/decoder.h>
//   absl::StatusOr<std::unique_ptr<la3::Decoder>> decoder = la3::Decoder::Load("run/checkpoint");
//   la3::TranslationOptions options;
//   options.num_beams = 5;
//   absl::StatusOr<std::vector<la3::Translation>> out =
//       (*decoder)->Translate({"The molecule is a monocarboxylic acid ..."}, options);
//
// CMake: find_package(la3 CONFIG REQUIRED) and target_link_libraries(app PRIVATE la3::decoder).
// A Decoder is immutable after Load: Translate may be called from several threads at once.
// Errors come back as absl::Status; the library never exits or aborts the host program.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

// Symbols of the shared library's public API; everything else in it is hidden.
#define LA3_API __attribute__((visibility("default")))

namespace la3 {

struct DecoderOptions {
  // SentencePiece model; empty = <checkpoint>/spiece.model.
  std::string tokenizer_path;
  // Inputs longer than this many tokens (eos included) are rejected with InvalidArgument
  // naming the input, or truncated when truncate_long_inputs is true.
  int64_t max_input_length = 512;
  bool truncate_long_inputs = false;
  // CPU threads for the math libraries (0 = their defaults).
  int threads = 0;
  // Where the model runs: "cpu", "auto" (cuda when a GPU is usable, else cpu), "cuda",
  // "cuda:N" or "cuda-emu" (the CUDA backend under the SIMT emulation, for tests).
  std::string device = "cpu";
  // GEMM operands on CUDA devices: "bf16" (fp32 accumulation) or "fp32".
  std::string gemm_precision = "bf16";
};

// In the spirit of CTranslate2's TranslationOptions; semantics of transformers' generate().
struct TranslationOptions {
  int num_beams = 1;               // 1 = greedy
  double length_penalty = 1.0;     // beam score = sum log p / length ** length_penalty
  // "false" (transformers' default heuristic), "true" (stop at num_beams hypotheses),
  // "never" (exact: stop only when no beam can improve).
  std::string early_stopping = "false";
  int64_t max_new_tokens = 256;
  int64_t min_length = 0;          // counts the decoder start token, as transformers
  int no_repeat_ngram_size = 0;
  double repetition_penalty = 1.0;
  int num_hypotheses = 1;          // returned per input, best first (<= num_beams)
  bool sampling = false;           // sample instead of search (num_beams must be 1)
  double temperature = 1.0;
  int top_k = 50;
  double top_p = 1.0;
  uint64_t seed = 0;
  size_t max_batch_size = 16;      // inputs decoded together
  // caption -> SMILES: among the num_beams finished hypotheses, return SMILES that RDKit
  // parses before those it rejects (each group by score).
  bool prefer_valid_smiles = false;
};

struct Hypothesis {
  std::string text;
  std::vector<int64_t> token_ids;  // without the decoder start token
  double score = 0.0;
};

struct Translation {
  std::vector<Hypothesis> hypotheses;  // best first
  int64_t input_tokens = 0;            // after truncation, eos included
  bool input_truncated = false;        // cut to max_input_length (truncate_long_inputs)
  // Generated ids past the tokenizer's pieces (a model's spare embedding rows): decoded as
  // nothing, as transformers does, and counted here over all hypotheses.
  int64_t ids_beyond_vocabulary = 0;
};

class LA3_API Decoder {
 public:
  static absl::StatusOr<std::unique_ptr<Decoder>> Load(const std::string& checkpoint_dir,
                                                        const DecoderOptions& options = {});
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  absl::StatusOr<std::vector<Translation>> Translate(const std::vector<std::string>& inputs,
                                                     const TranslationOptions& options = {}) const;

  // Number of model parameters and the vocabulary size, for logging.
  int64_t parameter_count() const;
  int64_t vocab_size() const;
  // The tokenizer's size (pieces + sentinels), which may be below vocab_size().
  int64_t tokenizer_size() const;
  // What choosing the device said (e.g. why "auto" fell back to the CPU); empty when nothing.
  const std::string& device_note() const;

 private:
  struct State;
  explicit Decoder(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// "la3 <version>".
LA3_API const char* Version();

}  // namespace la3
