// Whole-file reads and atomic writes. Errors name the path and the system's reason.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace la3 {

absl::StatusOr<std::string> read_file(const std::string& path);

// Writes `contents` to a temporary file beside `path`, flushes it to disk, then renames it
// over `path`: readers see either the old file or the complete new one, never a torn one.
absl::Status write_file_atomically(const std::string& path, const std::string& contents);

}  // namespace la3
