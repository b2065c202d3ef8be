#include "llm_client/augment_pipeline.h"

#include <chrono>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "data/molecule_dataset.h"
#include "engine/io/file_io.h"
#include "llm_client/hashing.h"
#include "llm_client/journal.h"
#include "llm_client/prompt_template.h"
#include "llm_client/replay_backend.h"

namespace la3::llm {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

enum SlotState : uint8_t { kPending, kInFlight, kKept, kGaveUp };

struct Molecule {
  const MoleculeRecord* record = nullptr;
  std::string caption_sha256;
  std::vector<SlotState> state;
  std::vector<int> rejections;
  std::vector<std::string> kept;
};

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string with_thousands(int64_t value) {
  std::string digits = absl::StrCat(value < 0 ? -value : value), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return value < 0 ? "-" + out : out;
}

}  // namespace

std::string eval_split_name(const std::string& path) {
  const std::string stem = absl::AsciiStrToLower(std::filesystem::path(path).stem().string());
  for (absl::string_view token : absl::StrSplit(stem, absl::ByAnyChar("._- "))) {
    for (const char* split : {"test", "validation", "valid", "val", "dev"}) {
      if (token == split) return split;
    }
  }
  return "";
}

AugmentOutcome run_augment(const AugmentConfig& config, StopFlag& stop,
                           const std::function<void(const AugmentProgress&)>& on_progress) {
  AugmentOutcome out;
  AugmentSummary& sum = out.summary;
  auto fail = [&](absl::Status status) {
    out.status = std::move(status);
    return out;
  };
  // Everything that can be wrong with the inputs is checked before the journal is touched.
  if (config.input.empty()) return fail(absl::InvalidArgumentError("no input: set data.input or pass --input"));
  if (!config.allow_eval_split) {
    if (const std::string split = eval_split_name(config.input); !split.empty()) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          config.input, ": looks like an evaluation split (", split,
          "); LA3 rewrites training captions only. Pass --allow-eval-split (data.allow_eval_split) to rewrite it anyway")));
    }
  }
  absl::StatusOr<PromptTemplate> prompt = PromptTemplate::load(config.template_path);
  if (!prompt.ok()) return fail(prompt.status());
  ReadOptions read_options;
  read_options.bad_rows = config.bad_rows;
  ReadReport report;
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_molecule_dataset(config.input, read_options, &report);
  if (!records.ok()) return fail(records.status());
  sum.rows_skipped = report.rows_skipped;
  sum.problems = report.problems;
  if (config.limit > 0 && static_cast<int64_t>(records->size()) > config.limit) records->resize(static_cast<size_t>(config.limit));
  if (records->empty()) return fail(absl::InvalidArgumentError(absl::StrCat(config.input, ": no molecules to rewrite")));

  const int k = config.k;
  std::vector<Molecule> molecules(records->size());
  std::unordered_map<std::string, size_t> by_cid;
  for (size_t i = 0; i < records->size(); ++i) {
    const MoleculeRecord& r = (*records)[i];
    auto [it, inserted] = by_cid.emplace(r.cid, i);
    if (!inserted) {
      return fail(absl::InvalidArgumentError(absl::StrCat(r.source, ": CID ", r.cid, " appears again (first at ",
                                                          (*records)[it->second].source, "); CIDs must be unique")));
    }
    Molecule& m = molecules[i];
    m.record = &r;
    m.caption_sha256 = sha256_hex(r.captions[0]);
    m.state.assign(static_cast<size_t>(k), kPending);
    m.rejections.assign(static_cast<size_t>(k), 0);
    m.kept.assign(static_cast<size_t>(k), "");
  }
  sum.model = config.replay.empty() ? config.client.model
                                    : "replay:" + std::filesystem::path(config.replay).filename().string();
  sum.template_sha256 = config.system_prompt.empty()
                            ? prompt->sha256()
                            : sha256_hex(absl::StrCat("system\n", config.system_prompt, "\nuser\n", prompt->text()));
  sum.molecules = static_cast<int64_t>(molecules.size());
  sum.wanted = sum.molecules * k;
  sum.output_jsonl = config.output_jsonl;
  sum.output_csv = config.output_csv;
  sum.journal = config.journal;

  std::unique_ptr<CompletionBackend> backend;
  if (config.replay.empty()) {
    ClientOptions client = config.client;
    client.api_key = api_key_from_env(config.api_key_env);
    backend = std::make_unique<ChatClient>(std::move(client));
  } else {
    absl::StatusOr<std::unique_ptr<ReplayBackend>> replay = ReplayBackend::load(config.replay, k);
    if (!replay.ok()) return fail(replay.status());
    backend = std::move(*replay);
  }

  JournalOpenReport journal_report;
  absl::StatusOr<std::unique_ptr<Journal>> opened = Journal::open(config.journal, config.journal_fsync_interval_ms, &journal_report);
  if (!opened.ok()) return fail(opened.status());
  Journal& journal = **opened;
  sum.torn_bytes = journal_report.torn_bytes;

  // Replays the journal: which slots are final, how often each was rejected.
  auto matches = [&](const JournalEntry& e) -> Molecule* {
    if (e.model != sum.model || e.template_sha256 != sum.template_sha256) return nullptr;
    auto found = by_cid.find(e.cid);
    if (found == by_cid.end()) return nullptr;
    Molecule& m = molecules[found->second];
    if (m.caption_sha256 != e.caption_sha256 || e.sample < 0 || e.sample >= k) return nullptr;
    return &m;
  };
  for (const JournalEntry& e : journal.entries()) {
    Molecule* m = matches(e);
    if (m == nullptr) {
      ++sum.foreign_entries;
      continue;
    }
    const size_t s = static_cast<size_t>(e.sample);
    if (m->state[s] != kPending) continue;  // already final: a later line cannot change it
    if (e.type == "gave_up") {
      m->state[s] = kGaveUp;
    } else if (e.kept) {
      m->state[s] = kKept;
      m->kept[s] = e.text;
    } else {
      ++m->rejections[s];
    }
  }

  absl::Status journal_error;
  auto append = [&](const JournalEntry& e) {
    if (!journal_error.ok()) return false;
    journal_error = journal.append(e);
    if (!journal_error.ok()) {
      stop.store(2);
      return false;
    }
    return true;
  };
  auto entry_for = [&](const Molecule& m, int sample) {
    JournalEntry e;
    e.cid = m.record->cid;
    e.caption_sha256 = m.caption_sha256;
    e.template_sha256 = sum.template_sha256;
    e.model = sum.model;
    e.sample = sample;
    return e;
  };

  std::deque<size_t> queue;  // slot = molecule * k + sample
  int64_t done = 0;
  for (size_t i = 0; i < molecules.size(); ++i) {
    for (int s = 0; s < k; ++s) {
      Molecule& m = molecules[i];
      const size_t si = static_cast<size_t>(s);
      if (m.state[si] == kPending && m.rejections[si] > config.max_rejections) {
        // Killed between the last rejection and its "gave_up" line.
        JournalEntry e = entry_for(m, s);
        e.type = "gave_up";
        if (!append(e)) return fail(journal_error);
        m.state[si] = kGaveUp;
      }
      if (m.state[si] == kPending) {
        queue.push_back(i * static_cast<size_t>(k) + si);
      } else {
        ++done;
      }
    }
  }
  sum.resumed = done;

  const auto started = Clock::now();
  auto last_progress = started - std::chrono::seconds(1);
  int64_t rejected_this_run = 0;
  auto report_progress = [&](bool force) {
    if (!on_progress) return;
    const auto now = Clock::now();
    if (!force && now - last_progress < std::chrono::milliseconds(200)) return;
    last_progress = now;
    AugmentProgress p;
    p.done = done;
    p.total = sum.wanted;
    p.done_this_run = done - sum.resumed;
    p.rejected = rejected_this_run;
    p.tokens = backend->stats().prompt_tokens + backend->stats().completion_tokens;
    p.elapsed_seconds = std::chrono::duration<double>(now - started).count();
    p.rate = static_cast<double>(p.done_this_run) / std::max(p.elapsed_seconds, 1e-9);
    p.eta_seconds = p.rate > 0 ? static_cast<double>(p.total - p.done) / p.rate : 0;
    on_progress(p);
  };

  std::unordered_map<uint64_t, std::vector<size_t>> in_flight;
  uint64_t next_id = 1;
  const size_t per_request = static_cast<size_t>(config.n);
  auto next = [&]() -> std::optional<ChatRequest> {
    while (!queue.empty()) {
      const size_t first = queue.front();
      queue.pop_front();
      Molecule& m = molecules[first / static_cast<size_t>(k)];
      if (m.state[first % static_cast<size_t>(k)] != kPending) continue;
      std::vector<size_t> slots = {first};
      while (slots.size() < per_request && !queue.empty() && queue.front() / static_cast<size_t>(k) == first / static_cast<size_t>(k) &&
             m.state[queue.front() % static_cast<size_t>(k)] == kPending) {
        slots.push_back(queue.front());
        queue.pop_front();
      }
      ChatRequest request;
      request.id = next_id++;
      request.system = config.system_prompt;
      request.user = prompt->render(m.record->smiles, m.record->captions[0]);
      request.n = static_cast<int>(slots.size());
      request.cid = m.record->cid;
      for (size_t slot : slots) {
        m.state[slot % static_cast<size_t>(k)] = kInFlight;
        request.samples.push_back(static_cast<int>(slot % static_cast<size_t>(k)));
      }
      in_flight.emplace(request.id, std::move(slots));
      ++sum.requests;
      return request;
    }
    return std::nullopt;
  };
  auto on_result = [&](ChatResult&& result) {
    auto found = in_flight.find(result.id);
    if (found == in_flight.end()) return;
    const std::vector<size_t> slots = std::move(found->second);
    in_flight.erase(found);
    bool usage_recorded = false;
    for (size_t i = 0; i < slots.size(); ++i) {
      Molecule& m = molecules[slots[i] / static_cast<size_t>(k)];
      const size_t s = slots[i] % static_cast<size_t>(k);
      if (i >= result.choices.size() || !journal_error.ok()) {
        m.state[s] = kPending;  // the server returned fewer choices than asked: ask again
        queue.push_back(slots[i]);
        continue;
      }
      const Choice& choice = result.choices[i];
      std::vector<std::string> siblings;
      for (size_t o = 0; o < m.kept.size(); ++o) {
        if (m.state[o] == kKept) siblings.push_back(m.kept[o]);
      }
      const FilterVerdict verdict = check_rewrite(choice.text, choice.finish_reason, m.record->captions[0],
                                                  m.record->smiles, siblings, config.filter);
      JournalEntry e = entry_for(m, static_cast<int>(s));
      e.kept = verdict.kept;
      e.text = verdict.kept ? normalize_rewrite(choice.text) : choice.text;
      e.finish_reason = choice.finish_reason;
      e.reason = verdict.reason;
      e.detail = verdict.detail;
      e.attempts = result.attempts;
      if (!usage_recorded) {
        e.prompt_tokens = result.prompt_tokens;
        e.completion_tokens = result.completion_tokens;
        usage_recorded = true;
      }
      if (!append(e)) {
        m.state[s] = kPending;
        continue;
      }
      if (verdict.kept) {
        m.state[s] = kKept;
        m.kept[s] = e.text;
        ++sum.kept;
        ++done;
        continue;
      }
      ++sum.rejected[verdict.reason];
      ++rejected_this_run;
      if (++m.rejections[s] > config.max_rejections) {
        JournalEntry g = entry_for(m, static_cast<int>(s));
        g.type = "gave_up";
        if (!append(g)) {
          m.state[s] = kPending;
          continue;
        }
        m.state[s] = kGaveUp;
        ++sum.gave_up;
        ++done;
      } else {
        m.state[s] = kPending;
        queue.push_back(slots[i]);
      }
    }
    report_progress(false);
  };

  absl::Status status = backend->run(next, on_result, stop);
  sum.client = backend->stats();
  sum.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  sum.cost = (static_cast<double>(sum.client.prompt_tokens) * config.price_input_per_million +
              static_cast<double>(sum.client.completion_tokens) * config.price_output_per_million) / 1e6;
  report_progress(true);
  if (absl::Status s = journal.sync(); !s.ok() && journal_error.ok()) journal_error = s;
  if (!journal_error.ok()) return fail(journal_error);
  for (const Molecule& m : molecules) {
    for (SlotState s : m.state) {
      sum.kept_total += s == kKept ? 1 : 0;
      sum.gave_up_total += s == kGaveUp ? 1 : 0;
    }
  }
  const std::string resume_hint =
      absl::StrCat("; ", sum.kept_total + sum.gave_up_total, "/", sum.wanted, " rewrites are final in the journal ",
                   config.journal, ": rerun the same command to resume");
  if (absl::IsCancelled(status)) return fail(absl::CancelledError(absl::StrCat(status.message(), resume_hint)));
  if (!status.ok()) {
    std::string hint;
    if (absl::StrContains(status.message(), "HTTP 401") || absl::StrContains(status.message(), "HTTP 403")) {
      hint = absl::StrCat(" (the API key is read from $", config.api_key_env,
                          api_key_from_env(config.api_key_env).empty() ? ", which is not set)" : ")");
    }
    return fail(absl::Status(status.code(), absl::StrCat(status.message(), hint, resume_hint)));
  }

  // Every slot is final: write the outputs from the journal, atomically.
  struct Provenance {
    int64_t attempts = 0, prompt_tokens = 0, completion_tokens = 0;
    json rewrites = json::array(), rejected = json::array();
  };
  std::unordered_map<std::string, Provenance> provenance;
  for (const JournalEntry& e : journal.entries()) {
    if (matches(e) == nullptr || e.type != "verdict") continue;
    Provenance& p = provenance[e.cid];
    p.attempts += e.attempts;
    p.prompt_tokens += e.prompt_tokens;
    p.completion_tokens += e.completion_tokens;
    if (!e.kept) p.rejected.push_back({{"sample", e.sample}, {"reason", e.reason}});
  }
  std::string jsonl, csv = "CID,SMILES,CAPTION\n";
  for (const Molecule& m : molecules) {
    const MoleculeRecord& r = *m.record;
    Provenance& p = provenance[r.cid];
    json rewrites = json::array(), gave_up = json::array();
    absl::StrAppend(&csv, csv_field(r.cid), ",", csv_field(r.smiles), ",", csv_field(r.captions[0]), "\n");
    ++sum.csv_rows;
    for (int s = 0; s < k; ++s) {
      if (m.state[static_cast<size_t>(s)] == kKept) {
        rewrites.push_back(m.kept[static_cast<size_t>(s)]);
        absl::StrAppend(&csv, csv_field(r.cid), ",", csv_field(r.smiles), ",", csv_field(m.kept[static_cast<size_t>(s)]), "\n");
        ++sum.csv_rows;
      } else {
        gave_up.push_back(s);
      }
    }
    // Keys in reading order (cid, smiles, original, rewrites, ...), not sorted.
    nlohmann::ordered_json line = {{"cid", r.cid},
                 {"smiles", r.smiles},
                 {"original", r.captions[0]},
                 {"rewrites", rewrites},
                 {"model", sum.model},
                 {"prompt_id", sum.template_sha256.substr(0, 12)},
                 {"provenance",
                  {{"template_sha256", sum.template_sha256},
                   {"attempts", p.attempts},
                   {"prompt_tokens", p.prompt_tokens},
                   {"completion_tokens", p.completion_tokens},
                   {"rejected", p.rejected},
                   {"gave_up_samples", gave_up}}}};
    absl::StrAppend(&jsonl, line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace), "\n");
  }
  for (const std::string& path : {config.output_jsonl, config.output_csv}) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  if (absl::Status s = write_file_atomically(config.output_jsonl, jsonl); !s.ok()) return fail(s);
  if (absl::Status s = write_file_atomically(config.output_csv, csv); !s.ok()) return fail(s);
  sum.complete = true;
  out.status = absl::OkStatus();
  return out;
}

std::string format_summary(const AugmentSummary& s, const AugmentConfig& config) {
  std::string out = absl::StrFormat("augment summary (model %s, template %s)\n", s.model, s.template_sha256.substr(0, 12));
  auto row = [&](const std::string& label, const std::string& value) {
    absl::StrAppendFormat(&out, "  %-28s %s\n", label, value);
  };
  row("molecules x k", absl::StrFormat("%d x %d = %d rewrites", s.molecules, config.k, s.wanted));
  row("already in the journal", absl::StrCat(s.resumed));
  row("kept (this run)", absl::StrCat(s.kept));
  int64_t rejected = 0;
  for (const auto& [reason, count] : s.rejected) rejected += count;
  row("rejected (this run)", absl::StrCat(rejected));
  for (const std::string& reason : filter_reasons()) {
    auto found = s.rejected.find(reason);
    if (found != s.rejected.end()) row("  " + reason, absl::StrCat(found->second));
  }
  row("gave up (this run)", absl::StrFormat("%d (rejected %d times)", s.gave_up, config.max_rejections + 1));
  row("final rewrites", absl::StrFormat("%d kept, %d given up, of %d", s.kept_total, s.gave_up_total, s.wanted));
  const ClientStats& c = s.client;
  row("requests", absl::StrFormat("%d (%d HTTP attempts, %d retries: 429 x%d, 5xx x%d, timeouts x%d, connection x%d, "
                                  "malformed x%d)",
                                  s.requests, c.attempts, c.retries, c.http_429, c.http_5xx, c.timeouts,
                                  c.connection_errors, c.malformed));
  row("tokens", absl::StrFormat("%s prompt + %s completion", with_thousands(c.prompt_tokens),
                                with_thousands(c.completion_tokens)));
  row("estimated cost", absl::StrFormat("$%.4f (at $%.2f / $%.2f per million input / output tokens)", s.cost,
                                        config.price_input_per_million, config.price_output_per_million));
  row("time", absl::StrFormat("%.1f s (%.2f rewrites/s)", s.seconds,
                              static_cast<double>(s.kept + s.gave_up) / std::max(s.seconds, 1e-9)));
  if (s.torn_bytes > 0) row("journal", absl::StrFormat("cut off a torn last line (%d bytes)", s.torn_bytes));
  if (s.rows_skipped > 0) row("input rows skipped", absl::StrCat(s.rows_skipped));
  return out;
}

}  // namespace la3::llm
