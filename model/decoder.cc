// The embeddable decoder (include/la3/decoder.h) over T5Model, Tokenizer and generate().
#include "la3/decoder.h"

#include "absl/strings/str_cat.h"
#include "data/batching.h"
#include "data/tokenizer.h"
#include "engine/device_selection.h"
#include "engine/error.h"
#include "eval/smiles.h"
#include "model/device_placement.h"
#include "model/generation.h"
#include "model/t5_checkpoint.h"

namespace la3 {

struct Decoder::State {
  T5Model model;
  Tokenizer tokenizer;
  DecoderOptions options;
  std::string device_note;
};

Decoder::Decoder(std::unique_ptr<State> state) : state_(std::move(state)) {}
Decoder::~Decoder() = default;

const char* Version() { return "la3 " LA3_VERSION_STRING; }

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Load(const std::string& checkpoint_dir, const DecoderOptions& options) {
  if (options.max_input_length < 2) {
    return absl::InvalidArgumentError(absl::StrCat("DecoderOptions.max_input_length must be >= 2, got ",
                                                   options.max_input_length));
  }
  try {
    set_cpu_threads(options.threads);
    absl::StatusOr<T5Model> model = load_t5_checkpoint(checkpoint_dir);
    if (!model.ok()) return model.status();
    absl::StatusOr<std::string> device_note = place_model_on_device(*model, options.device, options.gemm_precision);
    if (!device_note.ok()) return device_note.status();
    const std::string tokenizer_path =
        options.tokenizer_path.empty() ? checkpoint_dir + "/spiece.model" : options.tokenizer_path;
    absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(tokenizer_path);
    if (!tokenizer.ok()) return tokenizer.status();
    if (tokenizer->vocab_size() > model->config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer ", tokenizer_path, " has ", tokenizer->vocab_size(),
                                                     " tokens but the model only ", model->config().vocab_size));
    }
    return std::unique_ptr<Decoder>(
        new Decoder(std::make_unique<State>(State{std::move(*model), std::move(*tokenizer), options, std::move(*device_note)})));
  } catch (const std::exception& error) {
    return StatusFromException(error);
  }
}

int64_t Decoder::parameter_count() const { return state_->model.parameter_count(); }
int64_t Decoder::vocab_size() const { return state_->model.config().vocab_size; }
int64_t Decoder::tokenizer_size() const { return state_->tokenizer.vocab_size(); }
const std::string& Decoder::device_note() const { return state_->device_note; }

absl::StatusOr<std::vector<Translation>> Decoder::Translate(const std::vector<std::string>& inputs,
                                                            const TranslationOptions& options) const {
  GenerationOptions g;
  g.num_beams = options.num_beams;
  g.length_penalty = options.length_penalty;
  if (options.early_stopping == "false") {
    g.early_stopping = EarlyStopping::kFalse;
  } else if (options.early_stopping == "true") {
    g.early_stopping = EarlyStopping::kTrue;
  } else if (options.early_stopping == "never") {
    g.early_stopping = EarlyStopping::kNever;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("TranslationOptions.early_stopping must be \"false\", \"true\" or \"never\", got \"",
                                                   options.early_stopping, "\""));
  }
  g.max_new_tokens = options.max_new_tokens;
  g.min_length = options.min_length;
  g.no_repeat_ngram_size = options.no_repeat_ngram_size;
  g.repetition_penalty = options.repetition_penalty;
  g.num_return_sequences = options.num_hypotheses;
  g.do_sample = options.sampling;
  g.temperature = options.temperature;
  g.top_k = options.top_k;
  g.top_p = options.top_p;
  g.seed = options.seed;
  const State& state = *state_;
  if (options.prefer_valid_smiles) {
    g.is_valid = [&state](const std::vector<int64_t>& tokens) {
      absl::StatusOr<std::string> text = state.tokenizer.decode(tokens);
      return text.ok() && is_valid_smiles(*text);
    };
  }
  if (options.max_batch_size == 0) return absl::InvalidArgumentError("TranslationOptions.max_batch_size must be >= 1");
  if (options.max_new_tokens < 1) return absl::InvalidArgumentError("TranslationOptions.max_new_tokens must be >= 1");

  const State& s = *state_;
  std::vector<Translation> results;
  try {
    for (size_t first = 0; first < inputs.size(); first += options.max_batch_size) {
      const size_t last = std::min(inputs.size(), first + options.max_batch_size);
      std::vector<std::vector<int64_t>> encoded;
      std::vector<bool> truncated;
      for (size_t i = first; i < last; ++i) {
        absl::StatusOr<std::vector<int64_t>> ids = s.tokenizer.encode(inputs[i]);
        if (!ids.ok()) return ids.status();
        if (static_cast<int64_t>(ids->size()) > s.options.max_input_length && !s.options.truncate_long_inputs) {
          return absl::InvalidArgumentError(absl::StrCat("input ", i, " has ", ids->size(),
                                                         " tokens, more than max_input_length ",
                                                         s.options.max_input_length,
                                                         " (set DecoderOptions.truncate_long_inputs to truncate)"));
        }
        truncated.push_back(truncate_keeping_eos(*ids, s.options.max_input_length));
        encoded.push_back(std::move(*ids));
      }
      const PaddedInputs padded = pad_inputs(encoded, s.tokenizer.pad_id());
      absl::StatusOr<std::vector<std::vector<GeneratedSequence>>> generated = generate(s.model, padded.input_ids, padded.attention_mask, g);
      if (!generated.ok()) return generated.status();
      for (size_t r = 0; r < generated->size(); ++r) {
        Translation translation;
        translation.input_tokens = static_cast<int64_t>(encoded[r].size());
        translation.input_truncated = truncated[r];
        for (const GeneratedSequence& sequence : (*generated)[r]) {
          Hypothesis h;
          h.token_ids.assign(sequence.tokens.begin() + 1, sequence.tokens.end());
          absl::StatusOr<std::string> text =
              s.tokenizer.decode(sequence.tokens, /*skip_special=*/true, &translation.ids_beyond_vocabulary);
          if (!text.ok()) return text.status();
          h.text = std::move(*text);
          h.score = sequence.score;
          translation.hypotheses.push_back(std::move(h));
        }
        results.push_back(std::move(translation));
      }
    }
  } catch (const std::exception& error) {
    return StatusFromException(error);
  }
  return results;
}

}  // namespace la3
