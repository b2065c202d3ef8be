// The augmentation journal: append-only JSONL, one line per filter verdict (kept or
// rejected rewrite) and per given-up rewrite, keyed by (CID, caption SHA-256, template
// SHA-256, model, sample index). Each line is written with a single write() on an O_APPEND
// descriptor, so a kill -9 leaves at most one torn last line; fdatasync follows every line
// (fsync_interval_ms = 0), or a background thread syncs at most every fsync_interval_ms
// (group commit: the event loop never waits for the disk; a kill -9 still loses nothing,
// since write() has handed the line to the kernel). On open, a torn last line is cut off (reported,
// never fatal); a corrupt complete line is an error naming file:line. An exclusive flock
// keeps two runs from writing one journal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace la3::llm {

struct JournalEntry {
  std::string type = "verdict";  // "verdict" (a rewrite and the filter's decision) or "gave_up"
  std::string cid, caption_sha256, template_sha256, model;
  int sample = 0;
  bool kept = false;
  std::string text, finish_reason, reason, detail;
  int attempts = 0;  // HTTP attempts of the request that produced it
  int64_t prompt_tokens = 0, completion_tokens = 0;  // the request's usage, on its first line only

  std::string to_json_line() const;  // ends with '\n'
  static absl::StatusOr<JournalEntry> from_json(const std::string& line);
};

struct JournalOpenReport {
  int64_t entries = 0;
  int64_t torn_bytes = 0;  // bytes of a torn last line that were cut off
};

// What Journal::open reads, on the file's bytes in memory (the fuzz targets in fuzz/ call
// these): the size of the complete lines (a torn last line, without its newline, lies past
// it), and the entries of `contents`' lines (blank lines skipped; a corrupt line is an error
// naming source:line).
size_t journal_complete_size(std::string_view contents);
absl::StatusOr<std::vector<JournalEntry>> parse_journal_lines(std::string_view contents, const std::string& source);

class Journal {
 public:
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Opens or creates `path` (and its directory), loading every entry.
  static absl::StatusOr<std::unique_ptr<Journal>> open(const std::string& path, int fsync_interval_ms,
                                                       JournalOpenReport* report = nullptr);

  const std::vector<JournalEntry>& entries() const { return entries_; }
  const std::string& path() const { return path_; }
  absl::Status append(const JournalEntry& entry);
  absl::Status sync();

 private:
  Journal() = default;
  std::string path_;
  int fd_ = -1;
  int fsync_interval_ms_ = 0;
  std::atomic<bool> dirty_{false};
  std::vector<JournalEntry> entries_;
  // Group commit (fsync_interval_ms > 0).
  std::thread syncer_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool closing_ = false;
  std::atomic<bool> sync_failed_{false};
};

}  // namespace la3::llm
