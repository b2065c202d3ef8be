// The checkpoints of a run directory, safe against a crash at any point of a save:
//
//   checkpoint-<step>/        complete checkpoints (the newest run.keep_checkpoints are kept)
//   checkpoint-<step>.tmp/    one being written (a leftover is deleted by the next save)
//   checkpoint -> checkpoint-<step>   a symlink to the newest, replaced atomically (rename),
//                                     the path users give to `engine generate --checkpoint`
//
// A save writes and fsyncs every file into the .tmp directory, renames it to its final name
// (atomic), fsyncs the run directory, then swaps the symlink and prunes. Whatever instant a
// crash hits, every checkpoint-<step> directory is complete, and latest() finds the newest
// one (even if the symlink still points to an older one or is missing). A `checkpoint`
// directory of the earlier layout is recognised and migrated on the next save.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace la3 {

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string run_dir);

  // The directory of the newest complete checkpoint (numbered, or the earlier layout's
  // `checkpoint` / `checkpoint.old`), if any.
  std::optional<std::string> latest() const;

  // Where to write the checkpoint of `step` (an empty directory, created).
  absl::StatusOr<std::string> begin(int64_t step);
  // Installs the checkpoint written into begin(step)'s directory and keeps the newest `keep`.
  absl::Status commit(int64_t step, int keep);

  // Deletes every checkpoint of the run (engine train --overwrite).
  absl::Status remove_all();

  // Test-only: LA3_TEST_CHECKPOINT_CRASH="PHASE:STEP" kills the process with SIGKILL at PHASE
  // (written, renamed, linked, swapped, pruned) of the save of STEP.
  static void maybe_crash(const char* phase, int64_t step);

 private:
  struct Entry {
    int64_t step;
    std::string path;
  };
  std::vector<Entry> complete() const;  // numbered complete checkpoints, oldest first

  std::string run_dir_;
};

}  // namespace la3
