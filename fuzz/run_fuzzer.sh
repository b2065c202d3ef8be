#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (what ctest's fuzz.<name> does):
#
#   fuzz/run_fuzzer.sh <binary> <seed corpus dir> <work dir> <seconds> [extra libFuzzer flags]
#
# New inputs go to <work dir>/corpus (the seeds in the repository stay as they are). A crash,
# sanitizer report, leak, timeout (one input over 10 s) or out-of-memory (over 2048 MB) stops
# the fuzzer; the saved input is then printed (path, size, base64 and a hex dump) and the
# script fails. Reproduce with: <binary> <path of the input>.
set -uo pipefail
if (($# < 4)); then
  echo "usage: $0 <binary> <seed corpus dir> <work dir> <seconds> [libFuzzer flags...]" >&2
  exit 2
fi
binary=$1 seeds=$2 work=$3 seconds=$4
shift 4
[[ -x $binary ]] || { echo "run_fuzzer: $binary: not built (scripts/build_sanitize.sh builds it)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
# UBSan aborts on its first report (-fno-sanitize-recover), so libFuzzer saves that input too.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds" 2>&1
status=$?
shopt -s nullglob
artifacts=("$work"/artifacts/*)
if ((status != 0 || ${#artifacts[@]} > 0)); then
  echo "run_fuzzer: $(basename "$binary") FAILED (exit status $status)"
  for input in "${artifacts[@]}"; do
    echo "run_fuzzer: reproducer $input ($(stat -c %s "$input") bytes); rerun: $binary $input"
    echo "--- base64:"
    base64 -w 76 "$input" | head -c 20000
    echo "--- hex:"
    od -A x -t x1z -v "$input" | head -n 256
  done
  exit 1
fi
echo "run_fuzzer: $(basename "$binary"): no failure in ${seconds} s"
