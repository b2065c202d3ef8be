// Runs a shell command for end-to-end tests (engine under mpirun, killed runs): its exit code
// (128 + signal when a signal ended it), its combined stdout and stderr, and its wall time.
#pragma once

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace la3::testing {

struct RunResult {
  int exit_code = -1;
  std::string output;
  double seconds = 0.0;
};

inline RunResult run_command(const std::string& command) {
  const auto start = std::chrono::steady_clock::now();
  RunResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) result.output += buffer;
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace la3::testing
