#include "engine/io/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace la3 {

namespace {
std::string errno_text(int error) { return std::strerror(error); }
}  // namespace

absl::StatusOr<std::string> read_file(const std::string& path) {
  // An ifstream opens a directory and reads nothing: a config that is a directory would
  // silently be an empty file (all defaults).
  std::error_code error_code;
  if (std::filesystem::is_directory(path, error_code)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, expected a file"));
  }
  std::ifstream stream(path, std::ios::binary);
  if (!stream) {
    const int error = errno;
    if (error == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open: ", errno_text(error)));
  }
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  if (stream.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return std::move(buffer).str();
}

absl::Status write_file_atomically(const std::string& path, const std::string& contents) {
  const std::string temporary = absl::StrCat(path, ".tmp-", ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(temporary, ": cannot create (for ", path, "): ", errno_text(errno)));
  }
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      return absl::DataLossError(absl::StrCat(temporary, ": write failed (", path, " untouched): ",
                                              errno_text(error)));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return absl::DataLossError(absl::StrCat(temporary, ": flush failed (", path, " untouched): ",
                                            errno_text(error)));
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return absl::DataLossError(absl::StrCat("cannot rename ", temporary, " to ", path, ": ", errno_text(error)));
  }
  return absl::OkStatus();
}

}  // namespace la3
