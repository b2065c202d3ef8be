// `engine score`: the loss of a checkpoint on a dataset in each loss mode, without training
// (model/scoring.h), and with --per-row every caption/SMILES pair's negative log-likelihood.
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "apps/arguments.h"
#include "apps/commands.h"
#include "data/molecule_dataset.h"
#include "data/tokenizer.h"
#include "engine/io/file_io.h"
#include "model/device_placement.h"
#include "model/scoring.h"
#include "model/t5_checkpoint.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"checkpoint", true, "checkpoint directory (config.json + weights; spiece.model unless --tokenizer)"},
    {"input", true, "dataset: ChEBI-20 TSV (.txt/.tsv), LaChEBI-20 CSV (.csv) or our JSONL with rewrites (.jsonl)"},
    {"direction", true, "caption2smiles (default) or smiles2caption"},
    {"loss", true, "comma-separated modes: mean, token_mixture, sequence_mixture, or all (default: every mode the "
                   "direction allows; token_mixture needs caption2smiles)"},
    {"k", true, "rewrites per molecule to use (c_0..c_k; default: every caption in the file)"},
    {"batch-size", true, "molecules (mixtures) or captions (mean) per batch (default 8; the same as training's "
                         "batch_size reproduces its validation loss exactly)"},
    {"max-source-length", true, "input tokens incl. eos, longer ones truncated and counted (default 512)"},
    {"max-target-length", true, "target tokens incl. eos, longer ones truncated and counted (default 512)"},
    {"bad-rows", true, "fail (default) or skip malformed dataset rows (counted and named)"},
    {"per-row", true, "write every row's NLL here as JSONL (cid, caption, source, target_tokens, nll, nll_per_token)"},
    {"out", true, "write the losses as JSON here"},
    {"tokenizer", true, "SentencePiece model (default: <checkpoint>/spiece.model)"},
    {"device", true, "auto | cpu | cuda | cuda:N | cuda-emu (default cpu)"},
    {"gemm-precision", true, "bf16 or fp32 GEMMs on the CUDA devices (default bf16)"},
    {"help", false, "show this message"},
};

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "engine score: %s\n", message.c_str());
  return code;
}

}  // namespace

int run_score(const std::vector<std::string>& args) {
  absl::StatusOr<Arguments> parsed = Arguments::parse(args, kOptions);
  const std::string usage = "usage: engine score --checkpoint DIR --input FILE [--loss all] [--per-row rows.jsonl] [--out losses.json]\n\n";
  if (!parsed.ok() || parsed->has("help")) {
    if (!parsed.ok()) std::fprintf(stderr, "engine score: %s\n\n", std::string(parsed.status().message()).c_str());
    std::fprintf(parsed.ok() ? stdout : stderr, "%s%s", usage.c_str(), describe_options(kOptions).c_str());
    return parsed.ok() ? 0 : 2;
  }
  for (const char* required : {"checkpoint", "input"}) {
    if (!parsed->has(required)) {
      std::fprintf(stderr, "engine score: --%s is required\n\n%s", required, usage.c_str());
      return 2;
    }
  }
  ScoreOptions options;
  absl::StatusOr<Direction> direction = parse_direction(parsed->get("direction", "caption2smiles"));
  if (!direction.ok()) return fail(2, std::string(direction.status().message()));
  options.direction = *direction;
  const std::string loss_list = parsed->get("loss", "all");
  options.modes.clear();
  if (loss_list == "all") {
    options.modes = {ops::CaptionLoss::kMean, ops::CaptionLoss::kSequenceMixture};
    if (options.direction == Direction::kCaptionToSmiles) {
      options.modes.insert(options.modes.begin() + 1, ops::CaptionLoss::kTokenMixture);
    }
  } else {
    for (const std::string& name : std::vector<std::string>(absl::StrSplit(loss_list, ','))) {
      absl::StatusOr<ops::CaptionLoss> mode = ops::parse_caption_loss(name);
      if (!mode.ok()) return fail(2, absl::StrCat("--loss: ", mode.status().message()));
      options.modes.push_back(*mode);
    }
  }
  struct IntegerFlag {
    const char* name;
    int64_t* value;
    int64_t minimum;
  };
  int64_t k = -1;
  for (const IntegerFlag& flag : {IntegerFlag{"k", &k, 0}, IntegerFlag{"batch-size", &options.batch_size, 1},
                                  IntegerFlag{"max-source-length", &options.max_source_length, 2},
                                  IntegerFlag{"max-target-length", &options.max_target_length, 2}}) {
    if (!parsed->has(flag.name)) continue;
    if (!absl::SimpleAtoi(parsed->get(flag.name), flag.value) || *flag.value < flag.minimum || *flag.value > (1 << 30)) {
      return fail(2, absl::StrCat("--", flag.name, " '", parsed->get(flag.name), "': expected an integer >= ", flag.minimum));
    }
  }
  options.k = static_cast<int>(k);
  options.per_row = parsed->has("per-row");
  ReadOptions read_options;
  const std::string bad_rows = parsed->get("bad-rows", "fail");
  if (bad_rows != "fail" && bad_rows != "skip") return fail(2, absl::StrCat("--bad-rows '", bad_rows, "': expected fail or skip"));
  read_options.bad_rows = bad_rows == "skip" ? BadRowPolicy::kSkip : BadRowPolicy::kFail;

  ReadReport read_report;
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_molecule_dataset(parsed->get("input"), read_options, &read_report);
  if (!records.ok()) return fail(1, std::string(records.status().message()));
  const std::string checkpoint = parsed->get("checkpoint");
  absl::StatusOr<T5Model> model = load_t5_checkpoint(checkpoint);
  if (!model.ok()) return fail(1, std::string(model.status().message()));
  absl::StatusOr<std::string> device_note =
      place_model_on_device(*model, parsed->get("device", "cpu"), parsed->get("gemm-precision", "bf16"));
  if (!device_note.ok()) return fail(2, std::string(device_note.status().message()));
  if (!device_note->empty()) std::fprintf(stderr, "engine score: %s\n", device_note->c_str());
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(parsed->get("tokenizer", checkpoint + "/spiece.model"));
  if (!tokenizer.ok()) return fail(1, std::string(tokenizer.status().message()));

  absl::StatusOr<DatasetScore> score = score_dataset(*model, *tokenizer, *records, options);
  if (!score.ok()) return fail(score.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1,
                               std::string(score.status().message()));

  nlohmann::json losses = nlohmann::json::object();
  std::printf("%s: %lld molecules, k = %d, %lld rows (%lld sources and %lld targets truncated; %lld bad rows skipped)\n",
              parsed->get("input").c_str(), static_cast<long long>(score->molecules), score->k,
              static_cast<long long>(score->tokenize.examples), static_cast<long long>(score->tokenize.sources_truncated),
              static_cast<long long>(score->tokenize.targets_truncated), static_cast<long long>(read_report.rows_skipped));
  std::printf("%-18s %12s %12s %8s\n", "loss mode", "loss", "tokens", "groups");
  for (const ModeScore& mode : score->modes) {
    std::printf("%-18s %12.6f %12.0f %8lld\n", ops::caption_loss_name(mode.mode), mode.loss, mode.normaliser,
                static_cast<long long>(mode.groups));
    losses[ops::caption_loss_name(mode.mode)] = {{"loss", mode.loss}, {"normaliser_tokens", mode.normaliser},
                                                 {"groups", mode.groups}, {"rows", mode.rows}};
  }
  std::fflush(stdout);
  for (const std::string& problem : read_report.problems) std::fprintf(stderr, "skipped: %s\n", problem.c_str());
  if (options.per_row) {
    std::string rows;
    for (const RowScore& row : score->rows) {
      const nlohmann::json line = {{"cid", row.cid}, {"caption", row.caption}, {"source", row.source},
                                   {"target_tokens", row.target_tokens}, {"nll", row.nll},
                                   {"nll_per_token", row.target_tokens > 0 ? row.nll / static_cast<double>(row.target_tokens) : 0.0}};
      absl::StrAppend(&rows, line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "\n");
    }
    if (absl::Status s = write_file_atomically(parsed->get("per-row"), rows); !s.ok()) return fail(1, std::string(s.message()));
    std::printf("wrote %zu rows' NLL to %s\n", score->rows.size(), parsed->get("per-row").c_str());
  }
  if (parsed->has("out")) {
    const nlohmann::json report = {{"checkpoint", checkpoint},
                                   {"input", parsed->get("input")},
                                   {"direction", direction_name(options.direction)},
                                   {"k", score->k},
                                   {"molecules", score->molecules},
                                   {"rows", score->tokenize.examples},
                                   {"sources_truncated", score->tokenize.sources_truncated},
                                   {"targets_truncated", score->tokenize.targets_truncated},
                                   {"rows_skipped", read_report.rows_skipped},
                                   {"batch_size", options.batch_size},
                                   {"losses", losses}};
    if (absl::Status s = write_file_atomically(parsed->get("out"), report.dump(2) + "\n"); !s.ok()) {
      return fail(1, std::string(s.message()));
    }
  }
  return 0;
}

}  // namespace la3::cli
