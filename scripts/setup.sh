#!/usr/bin/env bash
# One-command setup: installs the Debian packages LA3 needs (only those missing), reports
# the CUDA toolkit, then configures and builds with Ninja on 2 jobs.
#
#   scripts/setup.sh                 # build into ./build
#   LA3_BUILD_DIR=out scripts/setup.sh
#   LA3_SKIP_INSTALL=1 scripts/setup.sh   # never call apt-get (packages already present)
#
# Idempotent and quiet when there is nothing to do. Needs root (or sudo) only when a
# package is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${LA3_BUILD_DIR:-build}
jobs=${LA3_JOBS:-2}

# The packages of docs/BUILD.md (plus the build tools, normally preinstalled).
packages=(
  build-essential cmake ninja-build pkg-config ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  librdkit-dev libboost-dev libboost-context-dev libyaml-cpp-dev libabsl-dev
  libsentencepiece-dev nlohmann-json3-dev libcurl4-openssl-dev libcpp-httplib-dev
  libssl-dev zlib1g-dev libbrotli-dev libopenmpi-dev openmpi-bin libopenblas-dev
  libutf8proc-dev libinchi-dev wordnet-base libzip-dev
  # The sanitizer tree and the fuzz targets (scripts/build_sanitize.sh, run by ctest's
  # sanitize.build): clang, its sanitizer and libFuzzer runtimes, its OpenMP runtime, and
  # llvm for llvm-symbolizer (source lines in sanitizer reports).
  clang libclang-rt-14-dev libomp-dev llvm
  # A private single-node Slurm for the srun launch test (tests/dist/srun_launch_test.sh); the
  # engine itself does not need it.
  slurmctld slurmd slurm-client munge
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ ${LA3_SKIP_INSTALL:-0} == 1 ]]; then
    echo "setup: missing packages (LA3_SKIP_INSTALL=1, not installing): ${missing[*]}" >&2
    exit 1
  fi
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "setup: installing ${#missing[@]} Debian package(s): ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CUDA: optional. The CPU engine builds without it; with it the CUDA targets build too.
nvcc_path=$(command -v nvcc || true)
[[ -z $nvcc_path && -x /usr/local/cuda/bin/nvcc ]] && nvcc_path=/usr/local/cuda/bin/nvcc
if [[ -n $nvcc_path ]]; then
  cuda_version=$("$nvcc_path" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
  echo "setup: CUDA toolkit ${cuda_version} found ($nvcc_path): CUDA targets will be built"
else
  echo "setup: no CUDA toolkit found: building the CPU engine only"
fi

if [[ ! -f $build_dir/build.ninja ]]; then
  mkdir -p "$build_dir"
  # shellcheck disable=SC2086  # LA3_CMAKE_ARGS is a list of -D options
  cmake -S . -B "$build_dir" -G Ninja ${LA3_CMAKE_ARGS:-} >"$build_dir/configure.log" 2>&1 || {
    cat "$build_dir/configure.log" >&2
    echo "setup: cmake configure failed (log above, also in $build_dir/configure.log)" >&2
    exit 1
  }
  grep -E '^-- la3:' "$build_dir/configure.log" || true
fi
cmake --build "$build_dir" -j "$jobs"
