// `engine augment` configuration, from YAML (configs/augment.yaml documents every key and
// its default). Every key is optional; an unknown key or a wrong type is an error naming
// the file and line. Command-line flags override the file (apps/augment_command.cc).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/molecule_dataset.h"
#include "llm_client/chat_client.h"
#include "llm_client/rewrite_filter.h"

namespace la3::llm {

struct AugmentConfig {
  // endpoint + sampling + concurrency + retry (the api_key field stays empty here: it is read
  // from the environment variable `api_key_env` when the run starts)
  ClientOptions client;
  std::string api_key_env = "OPENAI_API_KEY";
  int n = 1;  // choices per request (servers without `n` support need 1)
  // prompt
  std::string template_path = "configs/prompts/la3_rewrite.txt";
  std::string system_prompt;
  // data
  std::string input;
  BadRowPolicy bad_rows = BadRowPolicy::kFail;
  bool allow_eval_split = false;
  int64_t limit = 0;  // first N molecules (0 = all)
  int k = 2;
  // output
  std::string output_jsonl = "runs/augment/augmented.jsonl";
  std::string output_csv;  // default: output_jsonl with .csv
  std::string journal;     // default: output_jsonl with .journal.jsonl
  int journal_fsync_interval_ms = 100;  // group commit; 0: fdatasync after every line
  // filter
  FilterOptions filter;
  int max_rejections = 3;  // re-requests of one rewrite after filter rejections
  // pricing (for the summary's cost estimate)
  double price_input_per_million = 0, price_output_per_million = 0;
  // no network: answer from this JSONL's precomputed rewrites
  std::string replay;

  // Fills the derived defaults (csv, journal paths) and checks ranges.
  absl::Status finalize();
};

absl::StatusOr<AugmentConfig> parse_augment_config(const std::string& yaml_text, const std::string& source);
absl::StatusOr<AugmentConfig> load_augment_config(const std::string& path);

}  // namespace la3::llm
