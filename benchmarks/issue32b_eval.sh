#!/usr/bin/env bash
# Issue #32, second held-out draw: 320 problems in the never-trained sentence shapes, drawn with
# seed 1 and none of them in the first 160 (`reason train heldout --task phrasings -n 340 --seed 1`,
# minus the questions already in phrasings-heldout160.jsonl, first 320 kept). Greedy for the
# trained model and gemma-3-270m, then the paired table. Resumable like issue32_eval.sh.
#
#   bash benchmarks/issue32b_eval.sh [MODEL [LABEL]]   # [smollm2-arith-kl05 [kl05]]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-smollm2-arith-kl05}
L=${2:-kl05}
OUT=${OUT:-benchmarks/results/issue32b}
SET=benchmarks/results/phrasings-heldout320-seed1.jsonl
mkdir -p "$OUT"
. benchmarks/lib.sh

run() {  # run NAME MODEL ARGS...
  local name=$1 model=$2 start=$SECONDS
  shift 2
  run_or_resume "$OUT/$name.jsonl" "$SET" -m "$model" --max-tokens 128 --seed 0 "$@"
  stamp "$name" "$start"
}

run shapes320-$L-greedy "$MODEL" -s vote -n 1 -t 0
run shapes320-gemma-greedy gemma-3-270m -s vote -n 1 -t 0

python benchmarks/phrasings_table.py \
  "shapes:135M $L greedy=$OUT/shapes320-$L-greedy.jsonl" \
  "shapes:gemma greedy=$OUT/shapes320-gemma-greedy.jsonl" \
  --pair "135M $L greedy@1:gemma greedy@1" | tee "$OUT/table.txt"
