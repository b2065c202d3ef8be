// `engine augment`: rewrites every training caption k times with an OpenAI-compatible LLM
// (llm_client/augment_pipeline.h), journaling each verdict, with a progress bar on a
// terminal and a summary table at the end. Ctrl-C stops issuing requests, lets the ones in
// flight finish (a second Ctrl-C abandons them), and exits 130; rerunning the same command
// resumes.
#include <unistd.h>

#include <csignal>
#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "apps/arguments.h"
#include "apps/commands.h"
#include "llm_client/augment_pipeline.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"config", true, "YAML configuration (configs/augment.yaml documents every key)"},
    {"input", true, "ChEBI-20 TSV (.txt/.tsv), our JSONL or LaChEBI-20 CSV (overrides data.input)"},
    {"output", true, "output JSONL; the CSV and journal sit beside it (overrides output.jsonl)"},
    {"k", true, "rewrites per molecule (default 2)"},
    {"limit", true, "first N molecules only"},
    {"base-url", true, "OpenAI-compatible base URL, e.g. http://localhost:8000/v1"},
    {"model", true, "model name sent to the server"},
    {"api-key-env", true, "environment variable holding the API key (default OPENAI_API_KEY)"},
    {"template", true, "prompt template file with {smiles} and {caption}"},
    {"max-in-flight", true, "concurrent requests (default 16)"},
    {"requests-per-minute", true, "client-side request rate limit (0 = none)"},
    {"tokens-per-minute", true, "client-side token rate limit (0 = none)"},
    {"replay", true, "no network: answer from this JSONL's precomputed rewrites"},
    {"bad-rows", true, "fail (default) or skip malformed input rows"},
    {"allow-eval-split", false, "rewrite a file named like a validation/test split"},
    {"help", false, "show this message"},
};

constexpr const char* kUsage = "usage: engine augment [--config FILE] [--input FILE] [--output FILE] [options]\n\n";

la3::llm::StopFlag g_stop{0};

void on_signal(int) {
  const int level = g_stop.load();
  g_stop.store(level >= 2 ? 2 : level + 1);
}

std::string clock_text(double seconds) {
  const long total = static_cast<long>(seconds + 0.5);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  return buffer;
}

template <typename T>
bool override_number(const Arguments& args, const std::string& name, T& out) {
  if (!args.has(name)) return true;
  if constexpr (std::is_floating_point_v<T>) {
    return absl::SimpleAtod(args.get(name), &out);
  } else {
    return absl::SimpleAtoi(args.get(name), &out);
  }
}

}  // namespace

int run_augment(const std::vector<std::string>& args) {
  absl::StatusOr<Arguments> parsed = Arguments::parse(args, kOptions);
  if (!parsed.ok() || parsed->has("help")) {
    if (!parsed.ok()) std::fprintf(stderr, "engine augment: %s\n\n", std::string(parsed.status().message()).c_str());
    std::fprintf(parsed.ok() ? stdout : stderr, "%s%s", kUsage, describe_options(kOptions).c_str());
    return parsed.ok() ? 0 : 2;
  }
  absl::StatusOr<llm::AugmentConfig> config =
      parsed->has("config") ? llm::load_augment_config(parsed->get("config")) : llm::parse_augment_config("", "(defaults)");
  if (!config.ok()) {
    std::fprintf(stderr, "engine augment: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  llm::AugmentConfig& c = *config;
  if (parsed->has("input")) c.input = parsed->get("input");
  if (parsed->has("output")) {
    c.output_jsonl = parsed->get("output");
    c.output_csv.clear();
    c.journal.clear();
  }
  if (parsed->has("base-url")) c.client.base_url = parsed->get("base-url");
  if (parsed->has("model")) c.client.model = parsed->get("model");
  if (parsed->has("api-key-env")) c.api_key_env = parsed->get("api-key-env");
  if (parsed->has("template")) c.template_path = parsed->get("template");
  if (parsed->has("replay")) c.replay = parsed->get("replay");
  if (parsed->has("allow-eval-split")) c.allow_eval_split = true;
  if (parsed->has("bad-rows")) {
    const std::string policy = parsed->get("bad-rows");
    if (policy != "fail" && policy != "skip") {
      std::fprintf(stderr, "engine augment: --bad-rows must be fail or skip\n");
      return 2;
    }
    c.bad_rows = policy == "fail" ? BadRowPolicy::kFail : BadRowPolicy::kSkip;
  }
  if (!override_number(*parsed, "k", c.k) || !override_number(*parsed, "limit", c.limit) ||
      !override_number(*parsed, "max-in-flight", c.client.max_in_flight) ||
      !override_number(*parsed, "requests-per-minute", c.client.requests_per_minute) ||
      !override_number(*parsed, "tokens-per-minute", c.client.tokens_per_minute)) {
    std::fprintf(stderr, "engine augment: a numeric option has an invalid value\n");
    return 2;
  }
  if (absl::Status s = c.finalize(); !s.ok()) {
    std::fprintf(stderr, "engine augment: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (!c.replay.empty()) {
    std::fprintf(stderr, "engine augment: replay mode, no network: rewrites come from %s\n", c.replay.c_str());
  } else {
    std::fprintf(stderr, "engine augment: %s, model %s, %d in flight%s\n", c.client.base_url.c_str(), c.client.model.c_str(),
                 c.client.max_in_flight,
                 llm::api_key_from_env(c.api_key_env).empty()
                     ? absl::StrCat(" (no API key: $", c.api_key_env, " is not set)").c_str()
                     : "");
  }

  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  double last_line = -1e9;
  bool drew = false;
  auto progress = [&](const llm::AugmentProgress& p) {
    if (terminal) {
      constexpr int kWidth = 24;
      const int filled = p.total > 0 ? static_cast<int>(kWidth * p.done / p.total) : kWidth;
      std::string bar(static_cast<size_t>(filled), '#');
      bar.append(static_cast<size_t>(kWidth - filled), '.');
      std::fprintf(stderr, "\r\033[K[%s] %lld/%lld rewrites  %.2f/s  ETA %s  %lld tokens  %lld rejected", bar.c_str(),
                   static_cast<long long>(p.done), static_cast<long long>(p.total), p.rate,
                   clock_text(p.eta_seconds).c_str(), static_cast<long long>(p.tokens), static_cast<long long>(p.rejected));
      drew = true;
    } else if (p.elapsed_seconds - last_line >= 10.0 || p.done == p.total) {
      last_line = p.elapsed_seconds;
      std::fprintf(stderr, "%lld/%lld rewrites %.2f/s eta %s tokens %lld rejected %lld\n", static_cast<long long>(p.done),
                   static_cast<long long>(p.total), p.rate, clock_text(p.eta_seconds).c_str(),
                   static_cast<long long>(p.tokens), static_cast<long long>(p.rejected));
    }
    std::fflush(stderr);
  };

  const llm::AugmentOutcome outcome = llm::run_augment(c, g_stop, progress);
  if (drew) std::fputc('\n', stderr);
  for (const std::string& problem : outcome.summary.problems) std::fprintf(stderr, "skipped: %s\n", problem.c_str());
  if (outcome.summary.molecules > 0) std::fputs(llm::format_summary(outcome.summary, c).c_str(), stdout);
  std::fflush(stdout);
  if (absl::IsCancelled(outcome.status)) {
    std::fprintf(stderr, "engine augment: %s\n", std::string(outcome.status.message()).c_str());
    return 130;
  }
  if (!outcome.status.ok()) {
    std::fprintf(stderr, "engine augment: %s\n", std::string(outcome.status.message()).c_str());
    return 1;
  }
  std::printf("wrote %s (%lld molecules) and %s (%lld rows); journal %s\n", c.output_jsonl.c_str(),
              static_cast<long long>(outcome.summary.molecules), c.output_csv.c_str(),
              static_cast<long long>(outcome.summary.csv_rows), c.journal.c_str());
  return 0;
}

}  // namespace la3::cli
