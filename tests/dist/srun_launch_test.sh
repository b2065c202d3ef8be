#!/usr/bin/env bash
# Slurm launch of data-parallel training: starts the private single-node Slurm of
# scripts/slurm/local_cluster.sh, runs `srun --mpi=pmix -N1 -n2 engine train` on the demo
# config for a few steps, and checks that
#   - rank 0 (and only rank 0) prints "distributed: 2 ranks (pmix)", the step exits 0 and a
#     checkpoint is written;
#   - plain `srun -n2` (no MPI plugin) stops with the engine's error instead of two
#     independent trainings.
# The cluster is stopped at exit.
#
#   tests/dist/srun_launch_test.sh
#   LA3_BUILD_DIR=build-release tests/dist/srun_launch_test.sh
#
# Environment: LA3_BUILD_DIR (default build, relative to the repository root),
# LA3_SLURM_DIR (default /tmp/la3-slurm-test), LA3_SLURM_PORT (default 6827, so that a
# cluster started by hand on the default port is not disturbed), LA3_SRUN_STEPS (default 4).
# Exits 77 (skipped) when the Slurm/munge packages are missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
build_dir=${LA3_BUILD_DIR:-build}
[[ $build_dir == /* ]] || build_dir=$root/$build_dir
engine=$build_dir/apps/engine
steps=${LA3_SRUN_STEPS:-4}
export LA3_SLURM_DIR=${LA3_SLURM_DIR:-/tmp/la3-slurm-test}
export LA3_SLURM_PORT=${LA3_SLURM_PORT:-6827}
cluster=$root/scripts/slurm/local_cluster.sh

fail() { echo "srun_launch_test: FAIL: $*" >&2; exit 1; }

[[ -x $engine ]] || fail "no engine at $engine (set LA3_BUILD_DIR)"
export PATH=$PATH:/usr/sbin:/sbin
for tool in munged slurmctld slurmd srun; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "srun_launch_test: SKIP: $tool missing (apt-get install -y slurmctld slurmd slurm-client munge)" >&2
    exit 77
  fi
done

work=$(mktemp -d)
cleanup() {
  "$cluster" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
"$cluster" start
export SLURM_CONF=$LA3_SLURM_DIR/etc/slurm.conf
srun --mpi=list 2>&1 | grep -qw pmix || fail "srun --mpi=list has no pmix plugin"
echo "srun_launch_test: cluster up in $((SECONDS - started)) s"

# 1. srun --mpi=pmix: one training over 2 ranks.
run=$work/run
status=0
timeout 600 srun --immediate=60 --mpi=pmix -N1 -n2 --label -t 10 "$engine" train --config configs/demo.yaml \
  --max-steps "$steps" --output-dir "$run" >"$work/pmix.out" 2>&1 || status=$?
if ((status != 0)); then
  cat "$work/pmix.out" >&2
  fail "srun --mpi=pmix exited $status"
fi
lines=$(grep -c "distributed: 2 ranks (pmix)" "$work/pmix.out" || true)
[[ $lines == 1 ]] || { cat "$work/pmix.out" >&2; fail "expected one 'distributed: 2 ranks (pmix)' line, got $lines"; }
grep -Eq "^ *0: distributed: 2 ranks \(pmix\)" "$work/pmix.out" ||
  { cat "$work/pmix.out" >&2; fail "the 'distributed:' line is not from rank 0"; }
if grep -Eq "^ *1: " "$work/pmix.out"; then
  cat "$work/pmix.out" >&2
  fail "rank 1 printed output"
fi
grep -Eq "^ *0: trained $steps steps" "$work/pmix.out" || { cat "$work/pmix.out" >&2; fail "no 'trained $steps steps' line"; }
for file in model.safetensors optimizer.safetensors state.json; do
  [[ -s $run/checkpoint/$file ]] || fail "no checkpoint/$file in $run"
done
echo "srun_launch_test: srun --mpi=pmix -n2 trained $steps steps, checkpoint written ($((SECONDS - started)) s)"

# 2. plain srun -n2: the engine must refuse (each task would otherwise train alone).
status=0
timeout 300 srun --immediate=60 -N1 -n2 -t 5 "$engine" train --config configs/demo.yaml --max-steps "$steps" \
  --output-dir "$work/plain" >"$work/plain.out" 2>&1 || status=$?
if ((status == 0)); then
  cat "$work/plain.out" >&2
  fail "plain srun -n2 exited 0"
fi
grep -q "srun started 2 tasks without an MPI plugin" "$work/plain.out" ||
  { cat "$work/plain.out" >&2; fail "plain srun -n2 did not print the missing-plugin error"; }
[[ ! -e $work/plain/checkpoint ]] || fail "plain srun -n2 wrote a checkpoint"
echo "srun_launch_test: plain srun -n2 refused (exit $status)"

echo "srun_launch_test: PASS in $((SECONDS - started)) s"
