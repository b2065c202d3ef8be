#!/usr/bin/env bash
# CPU data-parallel step times: 1 rank x batch 2B against 2 ranks x batch B (the same global
# batch), and 2 ranks with the all-reduce after backward instead of overlapped with it.
#
#   scripts/bench_data_parallel.sh [STEPS] [BATCH_PER_RANK]      (defaults 12 and 8)
#
# The model is a mid-size T5 v1.1 (d_model 256, 4+4 layers, d_ff 1024, ~9.6M parameters,
# ~38 MB of gradients per step) on the bundled sample, one thread per rank, so a 2-core machine
# runs one rank per core. Step time = median of the per-step wall times after 2 warm-up steps;
# "all-reduce wait" = time spent after backward waiting for the gradient all-reduce (what the
# overlap did not hide), from metrics.jsonl. Needs a build (scripts/setup.sh) and mpirun.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
steps=${1:-12}
batch=${2:-8}
engine=${LA3_BUILD_DIR:-build}/apps/engine
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

config() {  # config NAME BATCH ACCUMULATION OVERLAP
  cat >"$work/$1.yaml" <<YAML
model: {preset: tiny, d_model: 256, d_kv: 64, num_heads: 4, d_ff: 1024, num_layers: 4, num_decoder_layers: 4, dropout_rate: 0.1}
data: {train: $PWD/data/sample/train.jsonl, validation: $PWD/data/sample/validation.jsonl, tokenizer: $PWD/data/sample/spiece.model}
training: {batch_size: $2, grad_accumulation: $3, max_steps: $steps, eval_every: 0, checkpoint_every: 0, log_every: 1, threads: 1, device: cpu}
distributed: {overlap: $4}
YAML
}

summarise() {  # summarise NAME RUN_DIR
  python3 - "$1" "$2/metrics.jsonl" <<'PY'
import json, statistics, sys
name, path = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path) if '"loss"' in line]
elapsed = [r["elapsed_s"] for r in rows]
steps = [b - a for a, b in zip(elapsed, elapsed[1:])][2:]
waits = [r.get("allreduce_wait_s", 0.0) for r in rows][3:]
tokens = [r["tokens_per_s"] for r in rows][3:]
print(f"| {name} | {statistics.median(steps) * 1000:.0f} | {statistics.median(tokens):.0f} | "
      f"{statistics.median(waits) * 1000:.1f} |")
PY
}

config one_rank $((2 * batch)) 1 true
config two_ranks "$batch" 1 true
config two_ranks_after "$batch" 1 false
mpi="mpirun --allow-run-as-root --oversubscribe --bind-to core"
echo "| run (global batch $((2 * batch)) groups, $steps steps) | step ms | tokens/s | all-reduce wait ms |"
echo "|---|---|---|---|"
OMP_NUM_THREADS=1 "$engine" train --config "$work/one_rank.yaml" --output-dir "$work/one_rank" >/dev/null 2>&1
summarise "1 rank x batch $((2 * batch))" "$work/one_rank"
$mpi -np 2 -x OMP_NUM_THREADS=1 "$engine" train --config "$work/two_ranks.yaml" --output-dir "$work/two_ranks" >/dev/null 2>&1
summarise "2 ranks x batch $batch, all-reduce during backward" "$work/two_ranks"
$mpi -np 2 -x OMP_NUM_THREADS=1 "$engine" train --config "$work/two_ranks_after.yaml" --output-dir "$work/two_ranks_after" >/dev/null 2>&1
summarise "2 ranks x batch $batch, all-reduce after backward" "$work/two_ranks_after"
