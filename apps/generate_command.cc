// `engine generate`: translate a file with a trained checkpoint and write MolT5's
// evaluation TSV (description|SMILES <TAB> ground truth <TAB> output), so the output feeds
// `engine eval` and the public MolT5 scripts alike.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "apps/arguments.h"
#include "engine/backend.h"
#include "engine/cuda/device_setup.h"
#include "apps/commands.h"
#include "data/batching.h"
#include "data/molecule_dataset.h"
#include "data/tokenizer.h"
#include "engine/io/file_io.h"
#include "eval/smiles.h"
#include "model/generation.h"
#include "model/t5_checkpoint.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"checkpoint", true, "checkpoint directory (config.json, model.safetensors, spiece.model)"},
    {"input", true, "ChEBI-20 TSV (.txt/.tsv), our JSONL (.jsonl) or plain text, one input per line"},
    {"direction", true, "caption2smiles or smiles2caption"},
    {"out", true, "output TSV"},
    {"tokenizer", true, "SentencePiece model (default: <checkpoint>/spiece.model)"},
    {"num-beams", true, "beam width (default 1 = greedy)"},
    {"max-new-tokens", true, "tokens to generate at most (default 256)"},
    {"length-penalty", true, "beam score = log-prob / length ** penalty (default 1.0)"},
    {"no-repeat-ngram-size", true, "forbid repeating n-grams of this size (default 0 = off)"},
    {"repetition-penalty", true, "default 1.0 = off"},
    {"batch-size", true, "inputs per batch (default 8)"},
    {"max-input-length", true, "input tokens, longer inputs are truncated and counted (default 512)"},
    {"prefer-valid-smiles", false, "caption2smiles with beams: rank hypotheses RDKit parses first"},
    {"device", true, "auto | cpu | cuda | cuda:N | cuda-emu (default cpu; auto = cuda when a GPU is usable)"},
    {"gemm-precision", true, "bf16 or fp32 GEMMs on the CUDA devices (default bf16)"},
    {"help", false, "show this message"},
};

struct Row {
  std::string input;
  std::string truth;
};

absl::StatusOr<std::vector<Row>> read_inputs(const std::string& path, Direction direction) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, expected an input file"));
  }
  const bool tabular = path.ends_with(".txt") || path.ends_with(".tsv") || path.ends_with(".jsonl") ||
                       path.ends_with(".csv");
  std::vector<Row> rows;
  if (tabular) {
    absl::StatusOr<std::vector<MoleculeRecord>> records = read_molecule_dataset(path, ReadOptions{});
    if (!records.ok()) return records.status();
    for (const MoleculeRecord& r : *records) {
      if (direction == Direction::kCaptionToSmiles) {
        rows.push_back(Row{r.captions[0], r.smiles});
      } else {
        rows.push_back(Row{r.smiles, r.captions[0]});
      }
    }
    return rows;
  }
  std::ifstream stream(path);
  if (!stream) return absl::NotFoundError(absl::StrCat(path, ": cannot open input file"));
  for (std::string line; std::getline(stream, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) rows.push_back(Row{line, ""});
  }
  return rows;
}

// TSV fields cannot hold tabs or newlines: replace them by spaces.
std::string tsv_field(const std::string& text) {
  return absl::StrReplaceAll(text, {{"\t", " "}, {"\n", " "}, {"\r", " "}});
}

template <typename T>
bool parse_number(const Arguments& args, const std::string& name, T& out) {
  if (!args.has(name)) return true;
  if constexpr (std::is_same_v<T, double>) {
    return absl::SimpleAtod(args.get(name), &out);
  } else {
    return absl::SimpleAtoi(args.get(name), &out);
  }
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
  absl::StatusOr<Direction> direction = parse_direction(parsed->get("direction"));
  if (!direction.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(direction.status().message()).c_str());
    return 2;
  }
  GenerationOptions options;
  options.max_new_tokens = 256;
  int64_t batch_size = 8, max_input = 512;
  int64_t beyond_vocabulary = 0;  // generated ids past the tokenizer, decoded as nothing
  if (!parse_number(*parsed, "num-beams", options.num_beams) || !parse_number(*parsed, "max-new-tokens", options.max_new_tokens) ||
      !parse_number(*parsed, "length-penalty", options.length_penalty) ||
      !parse_number(*parsed, "no-repeat-ngram-size", options.no_repeat_ngram_size) ||
      !parse_number(*parsed, "repetition-penalty", options.repetition_penalty) ||
      !parse_number(*parsed, "batch-size", batch_size) || !parse_number(*parsed, "max-input-length", max_input) ||
      batch_size < 1 || max_input < 2) {
    std::fprintf(stderr, "engine generate: a numeric option has an invalid value\n");
    return 2;
  }
  const std::string checkpoint = parsed->get("checkpoint");
  const bool to_smiles = *direction == Direction::kCaptionToSmiles;
  absl::StatusOr<T5Model> model = load_t5_checkpoint(checkpoint);
  if (!model.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  if (parsed->has("device")) {
    absl::StatusOr<DeviceChoice> choice = activate_device(parsed->get("device"));
    if (!choice.ok()) {
      std::fprintf(stderr, "engine generate: %s\n", std::string(choice.status().message()).c_str());
      return 2;
    }
    const std::string precision = parsed->get("gemm-precision", "bf16");
    if (precision != "bf16" && precision != "fp32") {
      std::fprintf(stderr, "engine generate: --gemm-precision '%s': expected bf16 or fp32\n", precision.c_str());
      return 2;
    }
    if (choice->device.type != DeviceType::kCpu) {
      backend_for(choice->device).set_gemm_precision(precision == "fp32" ? GemmPrecision::kFp32 : GemmPrecision::kBf16);
      *model = model->to_device(choice->device);
    }
    if (!choice->note.empty()) std::fprintf(stderr, "engine generate: %s\n", choice->note.c_str());
  }
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(parsed->get("tokenizer", checkpoint + "/spiece.model"));
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::vector<Row>> rows = read_inputs(parsed->get("input"), *direction);
  if (!rows.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(rows.status().message()).c_str());
    return 1;
  }
  std::string out = *direction == Direction::kCaptionToSmiles ? "description\tground truth\toutput\n"
                                                              : "SMILES\tground truth\toutput\n";
  if (parsed->has("prefer-valid-smiles")) {
    if (!to_smiles || options.num_beams < 2) {
      std::fprintf(stderr, "engine generate: --prefer-valid-smiles needs --direction caption2smiles and --num-beams >= 2\n");
      return 2;
    }
    const Tokenizer* tok = &*tokenizer;
    options.is_valid = [tok](const std::vector<int64_t>& tokens) {
      absl::StatusOr<std::string> text = tok->decode(tokens);
      return text.ok() && is_valid_smiles(*text);
    };
  }
  int64_t valid = 0, exact = 0, with_truth = 0;
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  int64_t truncated = 0;
  for (size_t first = 0; first < rows->size(); first += static_cast<size_t>(batch_size)) {
    const size_t last = std::min(rows->size(), first + static_cast<size_t>(batch_size));
    std::vector<std::vector<int64_t>> encoded;
    for (size_t i = first; i < last; ++i) {
      absl::StatusOr<std::vector<int64_t>> ids = tokenizer->encode((*rows)[i].input);
      if (!ids.ok()) {
        std::fprintf(stderr, "engine generate: input %zu: %s\n", i + 1, std::string(ids.status().message()).c_str());
        return 1;
      }
      truncated += truncate_keeping_eos(*ids, max_input) ? 1 : 0;
      encoded.push_back(std::move(*ids));
    }
    const int64_t n = static_cast<int64_t>(encoded.size());
    const PaddedInputs padded = pad_inputs(encoded, tokenizer->pad_id());
    absl::StatusOr<std::vector<std::vector<GeneratedSequence>>> generated = generate(*model, padded.input_ids, padded.attention_mask, options);
    if (!generated.ok()) {
      std::fprintf(stderr, "engine generate: %s\n", std::string(generated.status().message()).c_str());
      return 1;
    }
    for (int64_t r = 0; r < n; ++r) {
      absl::StatusOr<std::string> text =
          tokenizer->decode((*generated)[static_cast<size_t>(r)][0].tokens, true, &beyond_vocabulary);
      if (!text.ok()) {
        std::fprintf(stderr, "engine generate: %s\n", std::string(text.status().message()).c_str());
        return 1;
      }
      const Row& row = (*rows)[first + static_cast<size_t>(r)];
      if (to_smiles) {
        const std::optional<std::string> output = canonical_smiles(*text);
        valid += output.has_value() ? 1 : 0;
        if (!row.truth.empty()) {
          ++with_truth;
          const std::optional<std::string> truth = canonical_smiles(row.truth);
          exact += output && truth && *output == *truth ? 1 : 0;
        }
      }
      absl::StrAppend(&out, tsv_field(row.input), "\t", tsv_field(row.truth), "\t", tsv_field(*text), "\n");
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(last) / std::max(seconds, 1e-9);
    const double eta = static_cast<double>(rows->size() - last) / std::max(rate, 1e-9);
    std::fprintf(stderr, "%s%zu/%zu inputs  %.2f sentences/s  ETA %.0f s%s", terminal ? "\r\033[K" : "", last,
                 rows->size(), rate, eta, terminal ? "" : "\n");
  }
  if (terminal) std::fputc('\n', stderr);
  if (absl::Status s = write_file_atomically(parsed->get("out"), out); !s.ok()) {
    std::fprintf(stderr, "engine generate: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("wrote %zu rows to %s (%lld inputs truncated to %lld tokens)\n", rows->size(), parsed->get("out").c_str(),
              static_cast<long long>(truncated), static_cast<long long>(max_input));
  if (beyond_vocabulary > 0) {
    std::printf("%lld generated ids lay past the tokenizer's %lld tokens (spare embedding rows) and were decoded as "
                "nothing\n",
                static_cast<long long>(beyond_vocabulary), static_cast<long long>(tokenizer->vocab_size()));
  }
  if (to_smiles) {
    // A quick check; `engine eval` (issue #5) computes the full MolT5 metric set.
    std::printf("valid SMILES (RDKit): %lld/%zu; exact match by canonical SMILES: %lld/%lld\n",
                static_cast<long long>(valid), rows->size(), static_cast<long long>(exact),
                static_cast<long long>(with_truth));
  }
  return 0;
}

}  // namespace la3::cli
