#include "model/checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/io/file_io.h"

namespace la3 {

namespace {

namespace fs = std::filesystem;

constexpr char kPrefix[] = "checkpoint-";

// Makes a rename or a new entry in `dir` durable.
absl::Status fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::DataLossError(absl::StrCat("cannot open ", dir.string(), " to sync it"));
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok ? absl::OkStatus() : absl::DataLossError(absl::StrCat("cannot sync ", dir.string()));
}

// The step recorded in a checkpoint directory's state.json, if it is complete.
std::optional<int64_t> recorded_step(const fs::path& dir) {
  absl::StatusOr<std::string> text = read_file((dir / "state.json").string());
  if (!text.ok()) return std::nullopt;
  const nlohmann::json state = nlohmann::json::parse(*text, nullptr, false);
  if (state.is_discarded() || !state.contains("step") || !state["step"].is_number_integer()) return std::nullopt;
  std::error_code error;
  if (!fs::exists(dir / "model.safetensors", error) || !fs::exists(dir / "optimizer.safetensors", error)) {
    return std::nullopt;
  }
  return state["step"].get<int64_t>();
}

}  // namespace

CheckpointStore::CheckpointStore(std::string run_dir) : run_dir_(std::move(run_dir)) {}

void CheckpointStore::maybe_crash(const char* phase, int64_t step) {
  const char* spec = std::getenv("LA3_TEST_CHECKPOINT_CRASH");
  if (spec == nullptr) return;
  const std::string text = spec;
  const size_t colon = text.find(':');
  int64_t crash_step = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(text.substr(colon + 1), &crash_step)) return;
  if (text.substr(0, colon) == phase && crash_step == step) std::raise(SIGKILL);
}

std::vector<CheckpointStore::Entry> CheckpointStore::complete() const {
  std::vector<Entry> entries;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(run_dir_, error)) {
    const std::string name = entry.path().filename().string();
    int64_t step = 0;
    if (name.rfind(kPrefix, 0) != 0 || !absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1), &step)) continue;
    if (entry.is_symlink(error) || !entry.is_directory(error)) continue;
    if (recorded_step(entry.path()) == step) entries.push_back({step, entry.path().string()});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.step < b.step; });
  return entries;
}

std::optional<std::string> CheckpointStore::latest() const {
  std::optional<Entry> best;
  for (const Entry& entry : complete()) best = entry;
  // The earlier layout: a `checkpoint` directory (not a link), or `checkpoint.old` left by a
  // crash between its two renames.
  std::error_code error;
  for (const char* legacy : {"checkpoint", "checkpoint.old"}) {
    const fs::path path = fs::path(run_dir_) / legacy;
    if (fs::is_symlink(path, error) || !fs::is_directory(path, error)) continue;
    const std::optional<int64_t> step = recorded_step(path);
    if (step && (!best || *step > best->step)) best = Entry{*step, path.string()};
  }
  if (!best) return std::nullopt;
  return best->path;
}

absl::StatusOr<std::string> CheckpointStore::begin(int64_t step) {
  const fs::path staging = fs::path(run_dir_) / absl::StrCat(kPrefix, step, ".tmp");
  std::error_code error;
  fs::remove_all(staging, error);
  fs::create_directories(staging, error);
  if (error) return absl::PermissionDeniedError(absl::StrCat("cannot create ", staging.string(), ": ", error.message()));
  return staging.string();
}

absl::Status CheckpointStore::commit(int64_t step, int keep) {
  const fs::path run(run_dir_);
  const fs::path staging = run / absl::StrCat(kPrefix, step, ".tmp");
  const std::string final_name = absl::StrCat(kPrefix, step);
  const fs::path final_dir = run / final_name;
  const fs::path link = run / "checkpoint";
  std::error_code error;
  if (absl::Status s = fsync_directory(staging); !s.ok()) return s;
  maybe_crash("written", step);
  // A complete checkpoint of this step from a run that crashed before its link swap: the link
  // does not point to it (it would be newer than the link's target), so it can go.
  if (fs::exists(final_dir, error)) {
    if (fs::is_symlink(link, error) && fs::read_symlink(link, error) == final_name) {
      return absl::InternalError(absl::StrCat(final_dir.string(), " is the current checkpoint; refusing to replace it"));
    }
    fs::remove_all(final_dir, error);
  }
  fs::rename(staging, final_dir, error);
  if (error) return absl::DataLossError(absl::StrCat("cannot install ", final_dir.string(), ": ", error.message()));
  if (absl::Status s = fsync_directory(run); !s.ok()) return s;
  maybe_crash("renamed", step);
  // The earlier layout's directory moves to its numbered name first (latest() finds it there).
  if (!fs::is_symlink(link, error) && fs::is_directory(link, error)) {
    const std::optional<int64_t> old_step = recorded_step(link);
    const fs::path moved = run / (old_step ? absl::StrCat(kPrefix, *old_step) : std::string("checkpoint.legacy"));
    if (!fs::exists(moved, error)) {
      fs::rename(link, moved, error);
    } else {
      fs::remove_all(link, error);
    }
    if (error) return absl::DataLossError(absl::StrCat("cannot move ", link.string(), " aside: ", error.message()));
  }
  const fs::path new_link = run / "checkpoint.link-tmp";
  fs::remove(new_link, error);
  fs::create_directory_symlink(final_name, new_link, error);
  if (error) return absl::DataLossError(absl::StrCat("cannot create ", new_link.string(), ": ", error.message()));
  maybe_crash("linked", step);
  fs::rename(new_link, link, error);  // atomic replacement of the old link
  if (error) return absl::DataLossError(absl::StrCat("cannot point ", link.string(), " at ", final_name, ": ", error.message()));
  if (absl::Status s = fsync_directory(run); !s.ok()) return s;
  maybe_crash("swapped", step);
  // Keep the newest `keep` complete checkpoints (the link's target is the newest).
  std::vector<Entry> entries = complete();
  for (size_t i = 0; i + static_cast<size_t>(std::max(keep, 1)) < entries.size(); ++i) {
    fs::remove_all(entries[i].path, error);
  }
  fs::remove_all(run / "checkpoint.old", error);
  maybe_crash("pruned", step);
  return absl::OkStatus();
}

absl::Status CheckpointStore::remove_all() {
  std::error_code error;
  std::vector<fs::path> doomed;  // collected first: no deleting while the directory is read
  for (const fs::directory_entry& entry : fs::directory_iterator(run_dir_, error)) {
    const std::string name = entry.path().filename().string();
    if (name == "checkpoint" || name.rfind("checkpoint-", 0) == 0 || name.rfind("checkpoint.", 0) == 0) {
      doomed.push_back(entry.path());
    }
  }
  for (const fs::path& path : doomed) {
    fs::remove_all(path, error);
    if (error) return absl::PermissionDeniedError(absl::StrCat("cannot delete ", path.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace la3
