// `engine generate`: translate a file with a trained checkpoint and write MolT5's
// evaluation TSV (description|SMILES <TAB> ground truth <TAB> output), so the output feeds
// `engine eval` and the public MolT5 scripts alike.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cmath>
#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "apps/arguments.h"
#include "apps/commands.h"
#include "apps/generate_inputs.h"
#include "data/batching.h"
#include "engine/io/file_io.h"
#include "eval/smiles.h"
#include "la3/decoder.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"checkpoint", true, "checkpoint directory (config.json, model.safetensors, spiece.model)"},
    {"input", true, "inputs: ChEBI-20 TSV, LaChEBI-20 CSV, our JSONL or plain text (one input per line)"},
    {"input-format", true, "auto | tsv | csv | jsonl | lines (default auto: by extension; a .txt file is a ChEBI-20 "
                           "table when its first line is ChEBI-20's header, plain lines otherwise)"},
    {"direction", true, "caption2smiles or smiles2caption"},
    {"out", true, "output: FILE.jsonl (every returned hypothesis with token ids and scores) or MolT5's TSV "
                  "(any other name: the best hypothesis)"},
    {"tokenizer", true, "SentencePiece model (default: <checkpoint>/spiece.model)"},
    {"num-beams", true, "beam width (default 1 = greedy or sampling)"},
    {"num-return-sequences", true, "hypotheses returned per input, best first (<= num-beams; default 1)"},
    {"early-stopping", true, "beam search stop rule: false (transformers' default heuristic), true (stop at "
                             "num-beams finished hypotheses) or never (exact)"},
    {"max-new-tokens", true, "tokens to generate at most (default 256)"},
    {"max-length", true, "instead of --max-new-tokens: the length limit counting the decoder start token"},
    {"min-new-tokens", true, "eos is forbidden before this many generated tokens (default 0)"},
    {"min-length", true, "instead of --min-new-tokens: the minimum counting the decoder start token"},
    {"length-penalty", true, "beam score = log-prob / length ** penalty (default 1.0)"},
    {"no-repeat-ngram-size", true, "forbid repeating n-grams of this size (default 0 = off)"},
    {"repetition-penalty", true, "default 1.0 = off"},
    {"do-sample", false, "sample instead of searching (needs --num-beams 1)"},
    {"temperature", true, "sampling: logits / temperature (default 1.0)"},
    {"top-k", true, "sampling: keep the k most likely tokens (default 50; 0 = all)"},
    {"top-p", true, "sampling: keep the smallest set of tokens with probability >= p (default 1.0)"},
    {"seed", true, "sampling: the random seed (default 0); the same seed gives the same samples"},
    {"batch-size", true, "inputs per batch (default 8)"},
    {"max-input-length", true, "input tokens, longer inputs are truncated and counted (default 512)"},
    {"prefer-valid-smiles", false, "caption2smiles with beams: rank hypotheses RDKit parses first"},
    {"device", true, "auto | cpu | cuda | cuda:N | cuda-emu (default cpu; auto = cuda when a GPU is usable)"},
    {"gemm-precision", true, "bf16 or fp32 GEMMs on the CUDA devices (default bf16)"},
    {"help", false, "show this message"},
};

// TSV fields cannot hold tabs or newlines: replace them by spaces.
std::string tsv_field(const std::string& text) {
  return absl::StrReplaceAll(text, {{"\t", " "}, {"\n", " "}, {"\r", " "}});
}

// Parses --name into `out` when given. Returns "" or an error naming the flag and value.
template <typename T>
std::string parse_number(const Arguments& args, const std::string& name, T& out) {
  if (!args.has(name)) return "";
  const std::string text = args.get(name);
  bool ok = false;
  if constexpr (std::is_floating_point_v<T>) {
    double value = 0.0;
    ok = absl::SimpleAtod(text, &value) && std::isfinite(value);
    out = static_cast<T>(value);
  } else if constexpr (std::is_unsigned_v<T>) {
    uint64_t value = 0;
    ok = absl::SimpleAtoi(text, &value);
    out = static_cast<T>(value);
  } else {
    int64_t value = 0;
    ok = absl::SimpleAtoi(text, &value) && value >= std::numeric_limits<T>::min() && value <= std::numeric_limits<T>::max();
    out = static_cast<T>(value);
  }
  if (ok) return "";
  return absl::StrCat("--", name, " '", text, "': expected ",
                      std::is_floating_point_v<T> ? "a finite number" : std::is_unsigned_v<T> ? "a non-negative integer"
                                                                                               : "an integer");
}

// Every field of la3::TranslationOptions from the command line (the CLI goes through the
// same library users embed). Errors name the flag.
absl::Status parse_translation_options(const Arguments& args, TranslationOptions& options) {
  options.max_new_tokens = 256;
  int64_t max_length = 0, min_new_tokens = -1, min_length = 0, batch_size = 8;
  for (const std::string& error :
       {parse_number(args, "num-beams", options.num_beams),
        parse_number(args, "num-return-sequences", options.num_hypotheses),
        parse_number(args, "max-new-tokens", options.max_new_tokens), parse_number(args, "max-length", max_length),
        parse_number(args, "min-new-tokens", min_new_tokens), parse_number(args, "min-length", min_length),
        parse_number(args, "length-penalty", options.length_penalty),
        parse_number(args, "no-repeat-ngram-size", options.no_repeat_ngram_size),
        parse_number(args, "repetition-penalty", options.repetition_penalty),
        parse_number(args, "temperature", options.temperature), parse_number(args, "top-k", options.top_k),
        parse_number(args, "top-p", options.top_p), parse_number(args, "seed", options.seed),
        parse_number(args, "batch-size", batch_size)}) {
    if (!error.empty()) return absl::InvalidArgumentError(error);
  }
  if (batch_size < 1) return absl::InvalidArgumentError("--batch-size must be >= 1");
  options.max_batch_size = static_cast<size_t>(batch_size);
  if (args.has("max-length")) {
    if (args.has("max-new-tokens")) return absl::InvalidArgumentError("give --max-new-tokens or --max-length, not both");
    if (max_length < 2) return absl::InvalidArgumentError("--max-length must be >= 2 (it counts the decoder start token)");
    options.max_new_tokens = max_length - 1;  // transformers' max_length counts the decoder start token
  }
  options.min_length = min_length;
  if (args.has("min-new-tokens")) {
    if (args.has("min-length")) return absl::InvalidArgumentError("give --min-new-tokens or --min-length, not both");
    if (min_new_tokens < 0) return absl::InvalidArgumentError("--min-new-tokens must be >= 0");
    options.min_length = 1 + min_new_tokens;  // transformers: min_new_tokens after the decoder start token
  }
  if (args.has("early-stopping")) {
    const std::string rule = args.get("early-stopping");
    if (rule != "true" && rule != "false" && rule != "never") {
      return absl::InvalidArgumentError(absl::StrCat("--early-stopping '", rule, "': expected true, false or never"));
    }
    options.early_stopping = rule;
  }
  options.sampling = args.has("do-sample");
  if (!options.sampling) {
    for (const char* flag : {"temperature", "top-k", "top-p", "seed"}) {
      if (args.has(flag)) return absl::InvalidArgumentError(absl::StrCat("--", flag, " applies to sampling: add --do-sample"));
    }
  }
  options.prefer_valid_smiles = args.has("prefer-valid-smiles");
  return absl::OkStatus();
}

// One JSON line per input: what produced it and every returned hypothesis.
nlohmann::json jsonl_row(size_t index, const GenerateInput& row, const Translation& translation, bool to_smiles) {
  nlohmann::json hypotheses = nlohmann::json::array();
  for (const Hypothesis& h : translation.hypotheses) {
    // token_ids without the decoder start token, as transformers' sequences[:, 1:]
    nlohmann::json hypothesis = {{"text", h.text}, {"token_ids", h.token_ids}, {"score", h.score}};
    if (to_smiles) hypothesis["valid_smiles"] = is_valid_smiles(h.text);
    hypotheses.push_back(std::move(hypothesis));
  }
  nlohmann::json out = {{"index", index}, {"source", row.source}, {"input", row.input},
                        {"input_tokens", translation.input_tokens}, {"input_truncated", translation.input_truncated},
                        {"hypotheses", std::move(hypotheses)}};
  if (!row.truth.empty()) out["ground_truth"] = row.truth;
  return out;
}

}  // namespace

int run_generate(const std::vector<std::string>& args) {
  absl::StatusOr<Arguments> parsed = Arguments::parse(args, kOptions);
  const std::string usage = "usage: engine generate --checkpoint DIR --input FILE --direction caption2smiles|smiles2caption --out FILE [options]\n\n";
  if (!parsed.ok() || parsed->has("help")) {
    if (!parsed.ok()) std::fprintf(stderr, "engine generate: %s\n\n", std::string(parsed.status().message()).c_str());
    std::fprintf(parsed.ok() ? stdout : stderr, "%s%s", usage.c_str(), describe_options(kOptions).c_str());
    return parsed.ok() ? 0 : 2;
  }
  for (const char* required : {"checkpoint", "input", "direction", "out"}) {
    if (!parsed->has(required)) {
      std::fprintf(stderr, "engine generate: --%s is required\n\n%s", required, usage.c_str());
      return 2;
    }
  }
  auto usage_error = [](const absl::Status& status) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(status.message()).c_str());
    return 2;
  };
  absl::StatusOr<Direction> direction = parse_direction(parsed->get("direction"));
  if (!direction.ok()) return usage_error(direction.status());
  absl::StatusOr<InputFormat> input_format = parse_input_format(parsed->get("input-format", "auto"));
  if (!input_format.ok()) return usage_error(input_format.status());
  TranslationOptions options;
  if (absl::Status s = parse_translation_options(*parsed, options); !s.ok()) return usage_error(s);
  int64_t max_input = 512;
  if (std::string error = parse_number(*parsed, "max-input-length", max_input); !error.empty()) {
    return usage_error(absl::InvalidArgumentError(error));
  }
  if (max_input < 2) return usage_error(absl::InvalidArgumentError("--max-input-length must be >= 2 (a token and eos)"));
  const std::string out_path = parsed->get("out");
  const bool jsonl = out_path.ends_with(".jsonl");
  if (!jsonl && options.num_hypotheses > 1) {
    return usage_error(absl::InvalidArgumentError(
        "MolT5's TSV holds one output per input: write --out FILE.jsonl for --num-return-sequences > 1"));
  }
  const std::string checkpoint = parsed->get("checkpoint");
  const bool to_smiles = *direction == Direction::kCaptionToSmiles;
  if (options.prefer_valid_smiles && (!to_smiles || options.num_beams < 2)) {
    return usage_error(absl::InvalidArgumentError(
        "--prefer-valid-smiles needs --direction caption2smiles and --num-beams >= 2"));
  }
  const std::string gemm_precision = parsed->get("gemm-precision", "bf16");
  if (gemm_precision != "bf16" && gemm_precision != "fp32") {
    return usage_error(absl::InvalidArgumentError(absl::StrCat("--gemm-precision '", gemm_precision, "': expected bf16 or fp32")));
  }
  absl::StatusOr<std::vector<GenerateInput>> rows = read_generate_inputs(parsed->get("input"), *input_format, *direction);
  if (!rows.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(rows.status().message()).c_str());
    return 1;
  }
  DecoderOptions decoder_options;
  decoder_options.tokenizer_path = parsed->get("tokenizer", "");
  decoder_options.max_input_length = max_input;
  decoder_options.truncate_long_inputs = true;  // counted and reported below
  decoder_options.device = parsed->get("device", "cpu");
  decoder_options.gemm_precision = gemm_precision;
  absl::StatusOr<std::unique_ptr<Decoder>> decoder = Decoder::Load(checkpoint, decoder_options);
  if (!decoder.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(decoder.status().message()).c_str());
    return decoder.status().code() == absl::StatusCode::kInvalidArgument && parsed->has("device") ? 2 : 1;
  }
  if (!(*decoder)->device_note().empty()) std::fprintf(stderr, "engine generate: %s\n", (*decoder)->device_note().c_str());
  std::string out = jsonl ? "" : to_smiles ? "description\tground truth\toutput\n" : "SMILES\tground truth\toutput\n";
  int64_t valid = 0, exact = 0, with_truth = 0, truncated = 0;
  int64_t beyond_vocabulary = 0;  // generated ids past the tokenizer, decoded as nothing
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  const size_t batch = options.max_batch_size;
  for (size_t first = 0; first < rows->size(); first += batch) {
    const size_t last = std::min(rows->size(), first + batch);
    std::vector<std::string> inputs;
    for (size_t i = first; i < last; ++i) inputs.push_back((*rows)[i].input);
    absl::StatusOr<std::vector<Translation>> translations = (*decoder)->Translate(inputs, options);
    if (!translations.ok()) {
      std::fprintf(stderr, "engine generate: %s\n", std::string(translations.status().message()).c_str());
      return translations.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
    }
    for (size_t r = 0; r < translations->size(); ++r) {
      const Translation& translation = (*translations)[r];
      const GenerateInput& row = (*rows)[first + r];
      truncated += translation.input_truncated ? 1 : 0;
      beyond_vocabulary += translation.ids_beyond_vocabulary;
      const std::string& best = translation.hypotheses[0].text;
      if (to_smiles) {
        const std::optional<std::string> output = canonical_smiles(best);
        valid += output.has_value() ? 1 : 0;
        if (!row.truth.empty()) {
          ++with_truth;
          const std::optional<std::string> truth = canonical_smiles(row.truth);
          exact += output && truth && *output == *truth ? 1 : 0;
        }
      }
      if (jsonl) {
        const nlohmann::json line = jsonl_row(first + r, row, translation, to_smiles);
        absl::StrAppend(&out, line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "\n");
      } else {
        absl::StrAppend(&out, tsv_field(row.input), "\t", tsv_field(row.truth), "\t", tsv_field(best), "\n");
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(last) / std::max(seconds, 1e-9);
    const double eta = static_cast<double>(rows->size() - last) / std::max(rate, 1e-9);
    std::fprintf(stderr, "%s%zu/%zu inputs  %.2f sentences/s  ETA %.0f s%s", terminal ? "\r\033[K" : "", last,
                 rows->size(), rate, eta, terminal ? "" : "\n");
  }
  if (terminal) std::fputc('\n', stderr);
  if (absl::Status s = write_file_atomically(out_path, out); !s.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("wrote %zu rows to %s (%lld inputs truncated to %lld tokens)\n", rows->size(), out_path.c_str(),
              static_cast<long long>(truncated), static_cast<long long>(max_input));
  if (beyond_vocabulary > 0) {
    std::printf("%lld generated ids lay past the tokenizer's %lld tokens (spare embedding rows) and were decoded as "
                "nothing\n",
                static_cast<long long>(beyond_vocabulary), static_cast<long long>((*decoder)->tokenizer_size()));
  }
  if (to_smiles) {
    // A quick check on the best hypothesis; `engine eval` computes the full MolT5 metric set.
    std::printf("valid SMILES (RDKit): %lld/%zu; exact match by canonical SMILES: %lld/%lld\n",
                static_cast<long long>(valid), rows->size(), static_cast<long long>(exact),
                static_cast<long long>(with_truth));
  }
  return 0;
}

}  // namespace la3::cli
