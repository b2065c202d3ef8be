// main() of every benchmark binary: one CPU thread unless LA3_THREADS says otherwise, so
// figures are comparable with the single-thread OpenBLAS numbers in docs/BUILD.md.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "engine/device_selection.h"

int main(int argc, char** argv) {
  const char* threads = std::getenv("LA3_THREADS");
  la3::set_cpu_threads(threads != nullptr ? std::atoi(threads) : 1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
