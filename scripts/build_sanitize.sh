#!/usr/bin/env bash
# Builds the sanitizer tree: the libraries, the engine, the unit and integration suites and
# the fuzz targets (fuzz/) with clang under AddressSanitizer + UndefinedBehaviorSanitizer
# (LA3_SANITIZE=ON; no CUDA, benchmarks, MPI launches or emulated-kernel suites).
#
#   scripts/build_sanitize.sh [build dir]     # default build/sanitize
#
# The main tree's ctest runs this as the test sanitize.build (README's test command), so
# `scripts/setup.sh` alone never pays for it. Needs clang, libclang-rt-14-dev and libomp-dev
# (scripts/setup.sh installs them). Honours LA3_JOBS (default 2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${1:-build/sanitize}
jobs=${LA3_JOBS:-2}
for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "build_sanitize: $tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done
if [[ ! -f $build_dir/build.ninja ]]; then
  mkdir -p "$build_dir"
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DLA3_SANITIZE=ON >"$build_dir/configure.log" 2>&1 || {
    cat "$build_dir/configure.log" >&2
    echo "build_sanitize: cmake configure failed (log above, also in $build_dir/configure.log)" >&2
    exit 1
  }
  grep -E '^-- la3:' "$build_dir/configure.log" || true
fi
cmake --build "$build_dir" -j "$jobs"
