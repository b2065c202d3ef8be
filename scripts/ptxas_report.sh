#!/usr/bin/env bash
# Compiles every kernel source (.cu under kernels/) with nvcc for each target architecture
# and prints ptxas' resource usage per kernel: registers, shared memory, spills. Fails when
# any kernel spills (the GPU build must be spill-free) or nvcc fails.
#   scripts/ptxas_report.sh [ARCH ...]     (default: 80 90)
# Exit code 77 (ctest SKIP) when no nvcc is installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvcc_bin=$(command -v nvcc || true)
[[ -z $nvcc_bin && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
if [[ -z $nvcc_bin ]]; then
  echo "ptxas_report: no nvcc found; skipped"
  exit 77
fi
archs=("$@")
((${#archs[@]})) || archs=(80 90)
status=0
for source in $(find kernels -name '*.cu' | sort); do
  for arch in "${archs[@]}"; do
    log=$("$nvcc_bin" -std=c++20 -I. -arch=sm_"$arch" -Xptxas -v -c "$source" -o /dev/null 2>&1) || {
      echo "$log"
      echo "ptxas_report: nvcc failed on $source for sm_$arch"
      exit 1
    }
    # ptxas prints "Compiling entry function '<mangled>'" then "N bytes stack frame, A bytes
    # spill stores, B bytes spill loads" and "Used R registers, ...".
    while IFS= read -r line; do
      case "$line" in
        *"Compiling entry function"*) kernel=$(sed -n "s/.*function '\([^']*\)'.*/\1/p" <<<"$line") ;;
        *"spill stores"*)
          spills=$(sed -n 's/.*, \([0-9]*\) bytes spill stores, \([0-9]*\) bytes spill loads.*/\1 \2/p' <<<"$line")
          if [[ $spills != "0 0" ]]; then
            echo "SPILL sm_$arch $kernel: $line"
            status=1
          fi
          ;;
        *"Used "*"registers"*) printf 'sm_%s %-60s %s\n' "$arch" "$(c++filt "$kernel" 2>/dev/null || echo "$kernel")" "${line#*ptxas info    : }" ;;
      esac
    done <<<"$log"
  done
done
((status == 0)) && echo "ptxas_report: no kernel spills"
exit $status
