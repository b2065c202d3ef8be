// Small header-only helpers shared by the engine suites: capture an EngineError without
// letting any exception escape a test, and print gradcheck errors so a run shows how close
// each op came (the numbers the ctest log keeps).
#pragma once

#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "engine/error.h"
#include "tests/support/gradcheck.h"

namespace la3::testing {

// What running a piece of code that should fail produced.
struct CaughtError {
  bool engine_error = false;  // true when an la3::EngineError was thrown
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;  // what(), or a description of what happened instead
};

// Runs `fn`; reports the EngineError it throws. Any other exception, or none, is reported
// in `message` (engine_error false), so a test that expected an error fails readably
// instead of aborting.
template <typename Fn>
CaughtError catch_error(Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
  } catch (const EngineError& error) {
    return CaughtError{true, error.kind(), error.what()};
  } catch (const std::exception& error) {
    return CaughtError{false, ErrorKind::kInternal, std::string("unexpected exception: ") + error.what()};
  }
  return CaughtError{false, ErrorKind::kInternal, "no error"};
}

// The message of the EngineError `fn` throws ("no error" when it throws none).
template <typename Fn>
std::string error_message(Fn&& fn) {
  return catch_error(std::forward<Fn>(fn)).message;
}

// One line per check: "[gradcheck] <label>  forward 1.2e-15  grad0 3.4e-14 ...".
inline void print_report(const std::string& label, const GradCheckReport& report) {
  std::string line = "[gradcheck] " + label;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "  forward %.2e", report.forward_error);
  line += buffer;
  for (size_t i = 0; i < report.gradient_errors.size(); ++i) {
    if (report.gradient_errors[i] < 0.0) continue;  // input not differentiated
    std::snprintf(buffer, sizeof buffer, "  grad%zu %.2e", i, report.gradient_errors[i]);
    line += buffer;
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace la3::testing
