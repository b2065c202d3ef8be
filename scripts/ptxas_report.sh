#!/usr/bin/env bash
# Compiles every kernel with nvcc for each target architecture and prints ptxas' resource
# usage per kernel: registers, shared memory (static; dynamic shared memory is a launch
# argument and not in this report), stack frame, spills. Sources:
#   - kernels/**/*.cu (the SIMT self-check kernel),
#   - engine/cuda/*_cuda.cc compiled as CUDA (`nvcc -x cu`): the CUDA backend's launch files,
#     which instantiate every kernel family of kernels/*.cuh (pointwise, reduce, rmsnorm,
#     softmax, cross-entropy + embedding, attention, bf16 casts) exactly as the engine builds them.
# Fails when any kernel spills (the GPU build must be spill-free), when nvcc fails, or when a
# source yields no kernel at all. Flags match the la3_cuda target (-std=c++20 -O3, warnings
# are errors).
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
mapfile -t sources < <({ find kernels -name '*.cu'; ls engine/cuda/*_cuda.cc; } | sort)
gencodes=()
for arch in "${archs[@]}"; do gencodes+=(-gencode "arch=compute_$arch,code=sm_$arch"); done
status=0
declare -A seen  # "sm_XX kernel" -> reported already (several sources instantiate the same kernels)
printf '%-6s %-36s %s\n' arch kernel "ptxas resource usage (static shared memory; dynamic shared memory is a launch argument)"
for source in "${sources[@]}"; do
  # Device code only (-fatbin: no host compilation), every architecture in one call; -x cu: the
  # .cc launch files are CUDA sources for nvcc (la3_cuda compiles them the same way through
  # generated one-line .cu wrappers).
  log=$("$nvcc_bin" -x cu -std=c++20 -O3 -DNDEBUG -I. "${gencodes[@]}" -Werror=all-warnings -Xptxas -v \
    -fatbin "$source" -o /dev/null 2>&1) || {
    echo "$log"
    echo "ptxas_report: nvcc failed on $source"
    exit 1
  }
  # ptxas prints "Compiling entry function '<mangled>' for 'sm_XX'", then "N bytes stack frame,
  # A bytes spill stores, B bytes spill loads" and "Used R registers, ...".
  found=0
  while IFS= read -r line; do
    case "$line" in
      *"Compiling entry function"*)
        kernel=$(sed -n "s/.*function '\([^']*\)'.*/\1/p" <<<"$line")
        arch=$(sed -n "s/.* for '\(sm_[0-9a-z]*\)'.*/\1/p" <<<"$line")
        ;;
      *"spill stores"*)
        frame=$(sed -n 's/^ *\([0-9]*\) bytes stack frame.*/\1/p' <<<"$line")
        spills=$(sed -n 's/.*, \([0-9]*\) bytes spill stores, \([0-9]*\) bytes spill loads.*/\1 \2/p' <<<"$line")
        if [[ $spills != "0 0" ]]; then
          echo "SPILL $arch $kernel ($source): $line"
          status=1
        fi
        ;;
      *"Used "*"registers"*)
        found=$((found + 1))
        name=$(c++filt "$kernel" 2>/dev/null || echo "$kernel")
        name=${name%%(*}  # drop the parameter list
        name=${name#la3::kernels::}
        [[ -n ${seen["$arch $name"]:-} ]] && continue
        seen["$arch $name"]=1
        # Constant banks (kernel parameters) are not a limit: left out.
        usage=$(sed -E 's/.*ptxas info *: //; s/, [0-9]+ bytes cmem\[[0-9]+\]//g' <<<"$line")
        printf '%-6s %-36s %s, %s bytes stack frame  [%s]\n' "$arch" "$name" "$usage" "${frame:-0}" "$source"
        ;;
    esac
  done <<<"$log"
  if ((found == 0)); then
    echo "ptxas_report: no kernel compiled from $source"
    status=1
  fi
done
echo "ptxas_report: ${#seen[@]} kernels x architectures from ${#sources[@]} sources (${archs[*]/#/sm_})"
((status == 0)) && echo "ptxas_report: no kernel spills"
exit $status
