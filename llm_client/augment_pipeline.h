// The `engine augment` pipeline: read a ChEBI-20 TSV (or our JSONL / LaChEBI CSV), ask the
// backend for k rewrites of every caption, filter each (rewrite_filter.h), journal every
// verdict as it arrives (journal.h), re-request rejected rewrites up to a limit, and at the
// end write our JSONL and a LaChEBI-20-style CSV atomically from the journal.
//
// Resume: a rewrite is keyed by (CID, caption SHA-256, template SHA-256, model, sample
// index); rerunning the same command requests only the slots the journal lacks. Entries of
// another model or template stay in the journal untouched and are ignored.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "llm_client/augment_config.h"
#include "llm_client/chat_client.h"

namespace la3::llm {

struct AugmentProgress {
  int64_t done = 0, total = 0;        // final rewrite slots (kept or given up) / molecules * k
  int64_t done_this_run = 0;
  int64_t rejected = 0;               // this run
  int64_t tokens = 0;                 // prompt + completion, this run
  double elapsed_seconds = 0, rate = 0, eta_seconds = 0;  // rate: slots/s this run
};

struct AugmentSummary {
  std::string model, template_sha256;
  int64_t molecules = 0, wanted = 0;        // molecules, molecules * k
  int64_t resumed = 0;                      // slots already final in the journal at start
  int64_t kept = 0, gave_up = 0;            // this run
  std::map<std::string, int64_t> rejected;  // this run, by reason
  int64_t kept_total = 0, gave_up_total = 0;
  int64_t requests = 0;                     // this run (each may take several attempts)
  ClientStats client;
  double seconds = 0, cost = 0;
  int64_t torn_bytes = 0, foreign_entries = 0, rows_skipped = 0;
  std::vector<std::string> problems;        // skipped input rows, "file:line: what"
  std::string output_jsonl, output_csv, journal;
  int64_t csv_rows = 0;
  bool complete = false;                    // outputs written
};

struct AugmentOutcome {
  absl::Status status;  // OK, Cancelled (interrupted; resumable) or the error that stopped the run
  AugmentSummary summary;
};

// "validation"/"test"/... when the input's file name marks an evaluation split, else "".
std::string eval_split_name(const std::string& path);

// Runs the pipeline. `stop` is raised by the caller (1: drain, 2: abandon) and by the
// pipeline itself when the journal cannot be written. The API key is read from
// config.api_key_env here and never leaves the HTTP client.
AugmentOutcome run_augment(const AugmentConfig& config, StopFlag& stop,
                           const std::function<void(const AugmentProgress&)>& on_progress = nullptr);

// The end-of-run table: kept / rejected by reason, retries, tokens, estimated cost.
std::string format_summary(const AugmentSummary& summary, const AugmentConfig& config);

}  // namespace la3::llm
