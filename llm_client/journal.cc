#include "llm_client/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "engine/io/file_io.h"

namespace la3::llm {

namespace {

using nlohmann::json;

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::string JournalEntry::to_json_line() const {
  json j = {{"type", type}, {"cid", cid}, {"caption_sha256", caption_sha256}, {"template_sha256", template_sha256},
            {"model", model}, {"sample", sample}};
  if (type == "verdict") {
    j["kept"] = kept;
    j["text"] = text;
    j["finish_reason"] = finish_reason;
    if (!kept) {
      j["reason"] = reason;
      j["detail"] = detail;
    }
    j["attempts"] = attempts;
    j["prompt_tokens"] = prompt_tokens;
    j["completion_tokens"] = completion_tokens;
  }
  // Invalid UTF-8 from a server must not make the line unwritable: replace it.
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

namespace {

// An integer field of a journal line: absent -> `fallback` (none: the field is required),
// otherwise a JSON integer within T's range. A fraction, 1e300 or a number past T is a corrupt
// line: nlohmann's get<int>() would convert it, and a double out of range converts with
// undefined behaviour (fuzz/augment_journal_fuzz.cc found it).
template <typename T>
bool read_integer(const json& j, const char* key, std::optional<T> fallback, T& out, std::string& problem) {
  if (!j.contains(key)) {
    if (fallback.has_value()) {
      out = *fallback;
      return true;
    }
    problem = absl::StrCat("missing field '", key, "'");
    return false;
  }
  const json& value = j[key];
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      out = static_cast<T>(v);
      return true;
    }
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v >= static_cast<int64_t>(std::numeric_limits<T>::min()) && v <= static_cast<int64_t>(std::numeric_limits<T>::max())) {
      out = static_cast<T>(v);
      return true;
    }
  }
  problem = absl::StrCat("field '", key, "' is ", value.dump(), ", expected an integer that fits ",
                         sizeof(T) == 4 ? "32" : "64", " bits");
  return false;
}

}  // namespace

absl::StatusOr<JournalEntry> JournalEntry::from_json(const std::string& line) {
  const json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::DataLossError("not a JSON object");
  JournalEntry e;
  std::string problem;
  try {
    e.type = j.at("type").get<std::string>();
    e.cid = j.at("cid").get<std::string>();
    e.caption_sha256 = j.at("caption_sha256").get<std::string>();
    e.template_sha256 = j.at("template_sha256").get<std::string>();
    e.model = j.at("model").get<std::string>();
    if (!read_integer<int>(j, "sample", std::nullopt, e.sample, problem)) return absl::DataLossError(problem);
    if (e.type == "verdict") {
      e.kept = j.at("kept").get<bool>();
      e.text = j.at("text").get<std::string>();
      e.finish_reason = j.value("finish_reason", "");
      e.reason = j.value("reason", "");
      e.detail = j.value("detail", "");
      if (!read_integer<int>(j, "attempts", 0, e.attempts, problem) ||
          !read_integer<int64_t>(j, "prompt_tokens", 0, e.prompt_tokens, problem) ||
          !read_integer<int64_t>(j, "completion_tokens", 0, e.completion_tokens, problem)) {
        return absl::DataLossError(problem);
      }
    } else if (e.type != "gave_up") {
      return absl::DataLossError(absl::StrCat("unknown entry type '", e.type, "'"));
    }
  } catch (const json::exception& error) {
    return absl::DataLossError(absl::StrCat("missing or mistyped field (", error.what(), ")"));
  }
  return e;
}

size_t journal_complete_size(std::string_view contents) {
  return contents.empty() || contents.back() == '\n' ? contents.size() : contents.rfind('\n') + 1;
}

absl::StatusOr<std::vector<JournalEntry>> parse_journal_lines(std::string_view contents, const std::string& source) {
  std::vector<JournalEntry> entries;
  size_t begin = 0;
  int64_t line_number = 0;
  while (begin < contents.size()) {
    const size_t end = contents.find('\n', begin);
    const std::string line(contents.substr(begin, end - begin));
    begin = end + 1;
    ++line_number;
    if (line.empty()) continue;
    absl::StatusOr<JournalEntry> entry = JournalEntry::from_json(line);
    if (!entry.ok()) {
      return absl::DataLossError(absl::StrCat(source, ":", line_number, ": corrupt journal line: ", entry.status().message(),
                                              " (move the journal away to start over)"));
    }
    entries.push_back(std::move(*entry));
  }
  return entries;
}

Journal::~Journal() {
  if (syncer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closing_ = true;
    }
    wake_.notify_all();
    syncer_.join();
  }
  if (fd_ >= 0) {
    if (dirty_.load()) ::fdatasync(fd_);
    ::close(fd_);
  }
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::open(const std::string& path, int fsync_interval_ms,
                                                       JournalOpenReport* report) {
  std::unique_ptr<Journal> journal(new Journal());
  journal->path_ = path;
  journal->fsync_interval_ms_ = fsync_interval_ms;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(parent.string(), ": cannot create directory: ", ec.message()));
  journal->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (journal->fd_ < 0) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open journal: ", errno_text()));
  if (::flock(journal->fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": the journal is in use by another `engine augment` (", errno_text(), ")"));
  }
  absl::StatusOr<std::string> contents = read_file(path);
  if (!contents.ok()) return contents.status();
  JournalOpenReport local;
  JournalOpenReport& r = report != nullptr ? *report : local;
  // A kill -9 during a write leaves a last line without its newline: cut it off.
  const size_t keep = journal_complete_size(*contents);
  if (keep < contents->size()) {
    r.torn_bytes = static_cast<int64_t>(contents->size() - keep);
    if (::ftruncate(journal->fd_, static_cast<off_t>(keep)) != 0) {
      return absl::DataLossError(absl::StrCat(path, ": cannot cut off a torn last line: ", errno_text()));
    }
    ::fdatasync(journal->fd_);
    contents->resize(keep);
  }
  absl::StatusOr<std::vector<JournalEntry>> entries = parse_journal_lines(*contents, path);
  if (!entries.ok()) return entries.status();
  journal->entries_ = std::move(*entries);
  r.entries = static_cast<int64_t>(journal->entries_.size());
  if (fsync_interval_ms > 0) {
    Journal* j = journal.get();
    j->syncer_ = std::thread([j] {
      std::unique_lock<std::mutex> lock(j->mutex_);
      while (!j->closing_) {
        j->wake_.wait_for(lock, std::chrono::milliseconds(j->fsync_interval_ms_));
        if (j->dirty_.exchange(false) && ::fdatasync(j->fd_) != 0) j->sync_failed_.store(true);
      }
    });
  }
  return journal;
}

absl::Status Journal::append(const JournalEntry& entry) {
  const std::string line = entry.to_json_line();
  const ssize_t written = ::write(fd_, line.data(), line.size());
  if (written != static_cast<ssize_t>(line.size())) {
    const std::string why = written < 0 ? errno_text() : "short write";
    // Never leave a partial line behind for the next append to glue onto.
    if (written > 0) {
      const off_t size = ::lseek(fd_, 0, SEEK_END);
      if (size >= written && ::ftruncate(fd_, size - written) != 0) {
        // The torn line is cut off on the next open anyway.
      }
    }
    return absl::DataLossError(absl::StrCat(path_, ": cannot append to the journal: ", why));
  }
  entries_.push_back(entry);
  dirty_.store(true);
  if (sync_failed_.load()) return absl::DataLossError(absl::StrCat(path_, ": fdatasync failed in the background"));
  return fsync_interval_ms_ <= 0 ? sync() : absl::OkStatus();
}

absl::Status Journal::sync() {
  if (!dirty_.exchange(false)) return absl::OkStatus();
  if (::fdatasync(fd_) != 0) return absl::DataLossError(absl::StrCat(path_, ": fdatasync failed: ", errno_text()));
  return absl::OkStatus();
}

}  // namespace la3::llm
