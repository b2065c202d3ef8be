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

namespace {

// One run of the pipeline. It holds what the steps share: the molecules and their slot
// states, the journal, the queue of slots to request, the requests in flight and the
// counters of the summary. run() calls the steps in order; each returns a non-OK status to
// end the run with it.
class AugmentRun {
 public:
  AugmentRun(const AugmentConfig& config, StopFlag& stop, const std::function<void(const AugmentProgress&)>& on_progress)
      : config_(config), k_(static_cast<size_t>(config.k)), stop_(stop), on_progress_(on_progress),
        sum_(out_.summary) {}
  AugmentRun(const AugmentRun&) = delete;  // molecules_ points into records_
  AugmentRun& operator=(const AugmentRun&) = delete;

  AugmentOutcome run() {
    out_.status = run_steps();
    return std::move(out_);
  }

 private:
  absl::Status run_steps() {
    // Everything that can be wrong with the inputs is checked before the journal is touched.
    if (absl::Status s = read_inputs(); !s.ok()) return s;
    if (absl::Status s = index_molecules(); !s.ok()) return s;
    describe_run();
    if (absl::Status s = open_backend(); !s.ok()) return s;
    if (absl::Status s = open_journal(); !s.ok()) return s;
    replay_journal();
    if (absl::Status s = plan_queue(); !s.ok()) return s;
    started_ = Clock::now();
    last_progress_ = started_ - std::chrono::seconds(1);  // the first report is not held back
    absl::Status status = backend_->run([this] { return next_request(); },
                                        [this](ChatResult&& result) { handle_result(std::move(result)); }, stop_);
    if (absl::Status s = finish_requests(status); !s.ok()) return s;
    return write_outputs();
  }

  absl::Status read_inputs() {
    if (config_.input.empty()) return absl::InvalidArgumentError("no input: set data.input or pass --input");
    if (!config_.allow_eval_split) {
      if (const std::string split = eval_split_name(config_.input); !split.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            config_.input, ": looks like an evaluation split (", split,
            "); LA3 rewrites training captions only. Pass --allow-eval-split (data.allow_eval_split) to rewrite it anyway"));
      }
    }
    absl::StatusOr<PromptTemplate> prompt = PromptTemplate::load(config_.template_path);
    if (!prompt.ok()) return prompt.status();
    prompt_ = std::move(*prompt);
    ReadOptions read_options;
    read_options.bad_rows = config_.bad_rows;
    ReadReport report;
    absl::StatusOr<std::vector<MoleculeRecord>> records = read_molecule_dataset(config_.input, read_options, &report);
    if (!records.ok()) return records.status();
    records_ = std::move(*records);
    sum_.rows_skipped = report.rows_skipped;
    sum_.problems = report.problems;
    if (config_.limit > 0 && static_cast<int64_t>(records_.size()) > config_.limit) {
      records_.resize(static_cast<size_t>(config_.limit));
    }
    if (records_.empty()) return absl::InvalidArgumentError(absl::StrCat(config_.input, ": no molecules to rewrite"));
    return absl::OkStatus();
  }

  // One Molecule per record, found by CID (the journal's key), every slot pending.
  absl::Status index_molecules() {
    molecules_.resize(records_.size());
    for (size_t i = 0; i < records_.size(); ++i) {
      const MoleculeRecord& r = records_[i];
      auto inserted = by_cid_.emplace(r.cid, i);
      if (!inserted.second) {
        return absl::InvalidArgumentError(absl::StrCat(r.source, ": CID ", r.cid, " appears again (first at ",
                                                       records_[inserted.first->second].source,
                                                       "); CIDs must be unique"));
      }
      Molecule& m = molecules_[i];
      m.record = &r;
      m.caption_sha256 = sha256_hex(r.captions[0]);
      m.state.assign(k_, kPending);
      m.rejections.assign(k_, 0);
      m.kept.assign(k_, "");
    }
    return absl::OkStatus();
  }

  // The model and template keys every journal line of this run carries, and the sizes.
  void describe_run() {
    sum_.model = config_.replay.empty() ? config_.client.model
                                        : "replay:" + std::filesystem::path(config_.replay).filename().string();
    // The system prompt changes what is asked, so it is part of the template's key.
    sum_.template_sha256 = config_.system_prompt.empty()
                               ? prompt_.sha256()
                               : sha256_hex(absl::StrCat("system\n", config_.system_prompt, "\nuser\n", prompt_.text()));
    sum_.molecules = static_cast<int64_t>(molecules_.size());
    sum_.wanted = sum_.molecules * config_.k;
    sum_.output_jsonl = config_.output_jsonl;
    sum_.output_csv = config_.output_csv;
    sum_.journal = config_.journal;
  }

  absl::Status open_backend() {
    if (config_.replay.empty()) {
      ClientOptions client = config_.client;
      client.api_key = api_key_from_env(config_.api_key_env);
      backend_ = std::make_unique<ChatClient>(std::move(client));
      return absl::OkStatus();
    }
    absl::StatusOr<std::unique_ptr<ReplayBackend>> replay = ReplayBackend::load(config_.replay, config_.k);
    if (!replay.ok()) return replay.status();
    backend_ = std::move(*replay);
    return absl::OkStatus();
  }

  absl::Status open_journal() {
    JournalOpenReport report;
    absl::StatusOr<std::unique_ptr<Journal>> opened =
        Journal::open(config_.journal, config_.journal_fsync_interval_ms, &report);
    if (!opened.ok()) return opened.status();
    journal_ = std::move(*opened);
    sum_.torn_bytes = report.torn_bytes;
    return absl::OkStatus();
  }

  // The molecule a journal line belongs to, or null for a line of another model, template,
  // caption or k (left in the journal, ignored).
  Molecule* owner(const JournalEntry& e) {
    if (e.model != sum_.model || e.template_sha256 != sum_.template_sha256) return nullptr;
    auto found = by_cid_.find(e.cid);
    if (found == by_cid_.end()) return nullptr;
    Molecule& m = molecules_[found->second];
    if (m.caption_sha256 != e.caption_sha256 || e.sample < 0 || e.sample >= config_.k) return nullptr;
    return &m;
  }

  // Which slots the journal says are final, and how often each was rejected.
  void replay_journal() {
    for (const JournalEntry& e : journal_->entries()) {
      Molecule* m = owner(e);
      if (m == nullptr) {
        ++sum_.foreign_entries;
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
  }

  // Queues every slot still pending, in input order.
  absl::Status plan_queue() {
    int64_t final_slots = 0;
    for (size_t i = 0; i < molecules_.size(); ++i) {
      Molecule& m = molecules_[i];
      for (size_t s = 0; s < k_; ++s) {
        if (m.state[s] == kPending && m.rejections[s] > config_.max_rejections) {
          // Killed between the last rejection and its "gave_up" line.
          JournalEntry e = entry_for(m, s);
          e.type = "gave_up";
          if (!append(e)) return journal_error_;
          m.state[s] = kGaveUp;
        }
        if (m.state[s] == kPending) {
          queue_.push_back(i * k_ + s);
        } else {
          ++final_slots;
        }
      }
    }
    done_ = final_slots;
    sum_.resumed = final_slots;
    return absl::OkStatus();
  }

  // Appends to the journal; on the first failure raises `stop` (nothing more can be
  // recorded, so nothing more is asked) and refuses every later line.
  bool append(const JournalEntry& e) {
    if (!journal_error_.ok()) return false;
    journal_error_ = journal_->append(e);
    if (!journal_error_.ok()) {
      stop_.store(2);
      return false;
    }
    return true;
  }

  JournalEntry entry_for(const Molecule& m, size_t sample) const {
    JournalEntry e;
    e.cid = m.record->cid;
    e.caption_sha256 = m.caption_sha256;
    e.template_sha256 = sum_.template_sha256;
    e.model = sum_.model;
    e.sample = static_cast<int>(sample);
    return e;
  }

  // The next request: the first pending slot in the queue and, up to config.n, the pending
  // slots of the same molecule right behind it (one request asks for n choices).
  std::optional<ChatRequest> next_request() {
    while (!queue_.empty()) {
      const size_t first = queue_.front();
      queue_.pop_front();
      Molecule& m = molecules_[first / k_];
      if (m.state[first % k_] != kPending) continue;
      std::vector<size_t> slots = {first};
      while (slots.size() < static_cast<size_t>(config_.n) && !queue_.empty() && queue_.front() / k_ == first / k_ &&
             m.state[queue_.front() % k_] == kPending) {
        slots.push_back(queue_.front());
        queue_.pop_front();
      }
      return request_for(m, std::move(slots));
    }
    return std::nullopt;
  }

  ChatRequest request_for(Molecule& m, std::vector<size_t> slots) {
    ChatRequest request;
    request.id = next_id_++;
    request.system = config_.system_prompt;
    request.user = prompt_.render(m.record->smiles, m.record->captions[0]);
    request.n = static_cast<int>(slots.size());
    request.cid = m.record->cid;
    for (size_t slot : slots) {
      m.state[slot % k_] = kInFlight;
      request.samples.push_back(static_cast<int>(slot % k_));
    }
    in_flight_.emplace(request.id, std::move(slots));
    ++sum_.requests;
    return request;
  }

  // Judges choice i of a reply for slot i of its request. The reply's token usage goes on
  // the journal line of its first choice only, so summing the journal counts it once.
  void handle_result(ChatResult&& result) {
    auto found = in_flight_.find(result.id);
    if (found == in_flight_.end()) return;
    const std::vector<size_t> slots = std::move(found->second);
    in_flight_.erase(found);
    bool usage_recorded = false;
    for (size_t i = 0; i < slots.size(); ++i) {
      if (i >= result.choices.size() || !journal_error_.ok()) {
        requeue(slots[i]);  // the server returned fewer choices than asked: ask again
        continue;
      }
      judge(slots[i], result.choices[i], result, /*with_usage=*/!usage_recorded);
      usage_recorded = true;
    }
    report_progress(false);
  }

  void requeue(size_t slot) {
    molecules_[slot / k_].state[slot % k_] = kPending;
    queue_.push_back(slot);
  }

  // Filters one rewrite and journals the verdict (with the reply's token counts when
  // `with_usage`).
  void judge(size_t slot, const Choice& choice, const ChatResult& result, bool with_usage) {
    Molecule& m = molecules_[slot / k_];
    const size_t s = slot % k_;
    const FilterVerdict verdict = check_rewrite(choice.text, choice.finish_reason, m.record->captions[0],
                                                m.record->smiles, kept_siblings(m), config_.filter);
    JournalEntry e = entry_for(m, s);
    e.kept = verdict.kept;
    e.text = verdict.kept ? normalize_rewrite(choice.text) : choice.text;
    e.finish_reason = choice.finish_reason;
    e.reason = verdict.reason;
    e.detail = verdict.detail;
    e.attempts = result.attempts;
    if (with_usage) {
      e.prompt_tokens = result.prompt_tokens;
      e.completion_tokens = result.completion_tokens;
    }
    if (!append(e)) {
      m.state[s] = kPending;  // not recorded, so not final: a rerun asks again
      return;
    }
    if (verdict.kept) {
      m.state[s] = kKept;
      m.kept[s] = e.text;
      ++sum_.kept;
      ++done_;
      return;
    }
    ++sum_.rejected[verdict.reason];
    ++rejected_this_run_;
    reject(slot);
  }

  // The molecule's kept rewrites, which a new one must not nearly duplicate.
  static std::vector<std::string> kept_siblings(const Molecule& m) {
    std::vector<std::string> siblings;
    for (size_t o = 0; o < m.kept.size(); ++o) {
      if (m.state[o] == kKept) siblings.push_back(m.kept[o]);
    }
    return siblings;
  }

  // A rejected slot is asked again, until it has been rejected more than max_rejections
  // times; then it is given up, and the molecule keeps fewer rewrites.
  void reject(size_t slot) {
    Molecule& m = molecules_[slot / k_];
    const size_t s = slot % k_;
    if (++m.rejections[s] <= config_.max_rejections) {
      requeue(slot);
      return;
    }
    JournalEntry g = entry_for(m, s);
    g.type = "gave_up";
    if (!append(g)) {
      m.state[s] = kPending;
      return;
    }
    m.state[s] = kGaveUp;
    ++sum_.gave_up;
    ++done_;
  }

  // At most five reports a second, unless `force`.
  void report_progress(bool force) {
    if (!on_progress_) return;
    const auto now = Clock::now();
    if (!force && now - last_progress_ < std::chrono::milliseconds(200)) return;
    last_progress_ = now;
    AugmentProgress p;
    p.done = done_;
    p.total = sum_.wanted;
    p.done_this_run = done_ - sum_.resumed;
    p.rejected = rejected_this_run_;
    p.tokens = backend_->stats().prompt_tokens + backend_->stats().completion_tokens;
    p.elapsed_seconds = std::chrono::duration<double>(now - started_).count();
    p.rate = static_cast<double>(p.done_this_run) / std::max(p.elapsed_seconds, 1e-9);
    p.eta_seconds = p.rate > 0 ? static_cast<double>(p.total - p.done) / p.rate : 0;
    on_progress_(p);
  }

  // After the backend returned: the summary's counters, the journal flushed, and the
  // status that ends the run unless every slot is final (then OK: write the outputs).
  absl::Status finish_requests(const absl::Status& status) {
    sum_.client = backend_->stats();
    sum_.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    sum_.cost = (static_cast<double>(sum_.client.prompt_tokens) * config_.price_input_per_million +
                 static_cast<double>(sum_.client.completion_tokens) * config_.price_output_per_million) / 1e6;
    report_progress(true);
    if (absl::Status s = journal_->sync(); !s.ok() && journal_error_.ok()) journal_error_ = s;
    if (!journal_error_.ok()) return journal_error_;
    for (const Molecule& m : molecules_) {
      for (SlotState s : m.state) {
        sum_.kept_total += s == kKept ? 1 : 0;
        sum_.gave_up_total += s == kGaveUp ? 1 : 0;
      }
    }
    if (status.ok()) return status;
    const std::string resume_hint =
        absl::StrCat("; ", sum_.kept_total + sum_.gave_up_total, "/", sum_.wanted, " rewrites are final in the journal ",
                     config_.journal, ": rerun the same command to resume");
    if (absl::IsCancelled(status)) return absl::CancelledError(absl::StrCat(status.message(), resume_hint));
    return absl::Status(status.code(), absl::StrCat(status.message(), key_hint(status), resume_hint));
  }

  // A refused key is the usual cause of 401/403: say where the key comes from.
  std::string key_hint(const absl::Status& status) const {
    if (!absl::StrContains(status.message(), "HTTP 401") && !absl::StrContains(status.message(), "HTTP 403")) return "";
    return absl::StrCat(" (the API key is read from $", config_.api_key_env,
                        api_key_from_env(config_.api_key_env).empty() ? ", which is not set)" : ")");
  }

  // Per-molecule request counts and rejections, summed over this run's journal lines.
  struct Provenance {
    int64_t attempts = 0, prompt_tokens = 0, completion_tokens = 0;
    json rejected = json::array();
  };

  std::unordered_map<std::string, Provenance> collect_provenance() {
    std::unordered_map<std::string, Provenance> provenance;
    for (const JournalEntry& e : journal_->entries()) {
      if (owner(e) == nullptr || e.type != "verdict") continue;
      Provenance& p = provenance[e.cid];
      p.attempts += e.attempts;
      p.prompt_tokens += e.prompt_tokens;
      p.completion_tokens += e.completion_tokens;
      if (!e.kept) p.rejected.push_back({{"sample", e.sample}, {"reason", e.reason}});
    }
    return provenance;
  }

  // Every slot is final: the outputs are written from the journal's state, atomically.
  absl::Status write_outputs() {
    std::unordered_map<std::string, Provenance> provenance = collect_provenance();
    std::string jsonl, csv = "CID,SMILES,CAPTION\n";
    for (const Molecule& m : molecules_) {
      append_csv_rows(m, csv);
      absl::StrAppend(&jsonl, jsonl_line(m, provenance[m.record->cid]), "\n");
    }
    for (const std::string& path : {config_.output_jsonl, config_.output_csv}) {
      const std::filesystem::path parent = std::filesystem::path(path).parent_path();
      std::error_code ec;
      if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    }
    if (absl::Status s = write_file_atomically(config_.output_jsonl, jsonl); !s.ok()) return s;
    if (absl::Status s = write_file_atomically(config_.output_csv, csv); !s.ok()) return s;
    sum_.complete = true;
    return absl::OkStatus();
  }

  // LaChEBI-20 style: the original caption's row, then one row per kept rewrite.
  void append_csv_rows(const Molecule& m, std::string& csv) {
    const MoleculeRecord& r = *m.record;
    absl::StrAppend(&csv, csv_field(r.cid), ",", csv_field(r.smiles), ",", csv_field(r.captions[0]), "\n");
    ++sum_.csv_rows;
    for (size_t s = 0; s < k_; ++s) {
      if (m.state[s] != kKept) continue;
      absl::StrAppend(&csv, csv_field(r.cid), ",", csv_field(r.smiles), ",", csv_field(m.kept[s]), "\n");
      ++sum_.csv_rows;
    }
  }

  std::string jsonl_line(const Molecule& m, const Provenance& p) const {
    const MoleculeRecord& r = *m.record;
    json rewrites = json::array(), gave_up = json::array();
    for (size_t s = 0; s < k_; ++s) {
      if (m.state[s] == kKept) {
        rewrites.push_back(m.kept[s]);
      } else {
        gave_up.push_back(static_cast<int>(s));
      }
    }
    // Keys in reading order (cid, smiles, original, rewrites, ...), not sorted.
    nlohmann::ordered_json line = {{"cid", r.cid},
                                   {"smiles", r.smiles},
                                   {"original", r.captions[0]},
                                   {"rewrites", rewrites},
                                   {"model", sum_.model},
                                   {"prompt_id", sum_.template_sha256.substr(0, 12)},
                                   {"provenance",
                                    {{"template_sha256", sum_.template_sha256},
                                     {"attempts", p.attempts},
                                     {"prompt_tokens", p.prompt_tokens},
                                     {"completion_tokens", p.completion_tokens},
                                     {"rejected", p.rejected},
                                     {"gave_up_samples", gave_up}}}};
    return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }

  const AugmentConfig& config_;
  const size_t k_;  // rewrites per molecule; slot = molecule * k + sample
  StopFlag& stop_;
  const std::function<void(const AugmentProgress&)>& on_progress_;
  AugmentOutcome out_;
  AugmentSummary& sum_;  // out_.summary

  PromptTemplate prompt_;
  std::vector<MoleculeRecord> records_;
  std::vector<Molecule> molecules_;  // parallel to records_
  std::unordered_map<std::string, size_t> by_cid_;
  std::unique_ptr<CompletionBackend> backend_;
  std::unique_ptr<Journal> journal_;
  absl::Status journal_error_;  // the first failed append or sync; ends the run

  std::deque<size_t> queue_;  // slots to request
  std::unordered_map<uint64_t, std::vector<size_t>> in_flight_;  // request id -> its slots
  uint64_t next_id_ = 1;
  int64_t done_ = 0;  // final slots, resumed ones included
  int64_t rejected_this_run_ = 0;
  Clock::time_point started_, last_progress_;
};

}  // namespace

AugmentOutcome run_augment(const AugmentConfig& config, StopFlag& stop,
                           const std::function<void(const AugmentProgress&)>& on_progress) {
  AugmentRun run(config, stop, on_progress);
  return run.run();
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
