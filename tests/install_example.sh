#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds examples/ against the installed
# package (find_package(la3 CONFIG)), and translates two inputs with it.
#   install_example.sh BUILD_DIR EXAMPLES_DIR CHECKPOINT_DIR
set -euo pipefail
build_dir=$1 examples_dir=$2 checkpoint=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$examples_dir" -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null
printf 'The molecule is an alcohol.\nCCO\n' | "$work/example/translate" "$checkpoint" 2
