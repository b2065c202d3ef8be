// Errors of the engine.
//
// Library code never exits the process (docs/ARCHITECTURE.md, Errors). A broken invariant
// inside an op (shape or dtype mismatch, out-of-range index) throws la3::EngineError, whose
// message names the op and what it got; the public API boundary turns it into an absl::Status
// with la3::CaptureStatus(). Nothing here aborts.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace la3 {

// What kind of mistake an EngineError reports; mapped onto absl status codes.
enum class ErrorKind {
  kInvalidArgument,  // caller passed something the op cannot accept (shape, dtype, index)
  kOutOfRange,       // an index or id outside its valid range
  kUnimplemented,    // the op has no implementation for this device/dtype
  kInternal,         // an engine invariant failed: a bug in LA3 itself
  kResourceExhausted // an allocation failed
};

class EngineError : public std::runtime_error {
 public:
  EngineError(ErrorKind kind, std::string message)
      : std::runtime_error(std::move(message)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// Throws an EngineError whose message is the concatenation of `parts` (absl::StrCat).
template <typename... Parts>
[[noreturn]] void Fail(ErrorKind kind, const Parts&... parts) {
  throw EngineError(kind, absl::StrCat(parts...));
}

// Converts an exception into a Status; used at public API boundaries.
absl::Status StatusFromException(const std::exception& error);

// Runs `fn` and turns any exception it throws into a Status (OK when it returns).
template <typename Fn>
absl::Status CaptureStatus(Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
    return absl::OkStatus();
  } catch (const std::exception& error) {
    return StatusFromException(error);
  }
}

}  // namespace la3

// LA3_CHECK(cond, parts...): throws kInvalidArgument with the message when cond is false.
#define LA3_CHECK(cond, ...)                                             \
  do {                                                                   \
    if (!(cond)) ::la3::Fail(::la3::ErrorKind::kInvalidArgument, __VA_ARGS__); \
  } while (0)
