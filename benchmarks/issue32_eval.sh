#!/usr/bin/env bash
# Issue #32's table: a GRPO-trained SmolLM2-135M (the kl05 model by default), the base model and
# gemma-3-270m on three held-out sets (sentence shapes never trained on, GSM8K sources never
# trained on, the arithmetic task's hash split), greedy and maj@8, then the table.
#
#   bash benchmarks/issue32_eval.sh [MODEL [LABEL]]   # the trained model [smollm2-arith-kl05]
#                                                      # LABEL names its files [kl05]
#
# Every run is a `reason bench run` results file in OUT (default benchmarks/results/issue32);
# a file that exists is resumed, so the script can be stopped and started again.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-smollm2-arith-kl05}
L=${2:-kl05}
OUT=${OUT:-benchmarks/results/issue32}
R=benchmarks/results
mkdir -p "$OUT"
. benchmarks/lib.sh

run() {  # run NAME SET LIMIT MODEL ARGS...
  local name=$1 set=$2 limit=$3 model=$4 start=$SECONDS
  shift 4
  run_or_resume "$OUT/$name.jsonl" "$set" --limit "$limit" -m "$model" --max-tokens 128 \
    --seed 0 "$@"
  stamp "$name" "$start"
}

greedy=(-s vote -n 1 -t 0)
vote8=(-s vote -n 8)
SHAPES=$R/phrasings-heldout160.jsonl
GSM8K=$R/gsm8k-steps-heldout100.jsonl
ARITH=$R/arith-heldout200.jsonl

run shapes160-$L-greedy "$SHAPES" 160 "$MODEL" "${greedy[@]}"
run arith200-$L-greedy "$ARITH" 200 "$MODEL" "${greedy[@]}"
run shapes160-$L-vote8 "$SHAPES" 160 "$MODEL" "${vote8[@]}"
run gsm8k100-$L-greedy "$GSM8K" 100 "$MODEL" "${greedy[@]}"
run shapes160-gemma-greedy "$SHAPES" 160 gemma-3-270m "${greedy[@]}"
run shapes160-gemma-vote8 "$SHAPES" 160 gemma-3-270m "${vote8[@]}"
run shapes160-base-greedy "$SHAPES" 160 smollm2-135m "${greedy[@]}"
run gsm8k100-gemma-greedy "$GSM8K" 100 gemma-3-270m "${greedy[@]}"
run gsm8k100-base-greedy "$GSM8K" 100 smollm2-135m "${greedy[@]}"

python benchmarks/phrasings_table.py \
  "shapes:135M $L greedy=$OUT/shapes160-$L-greedy.jsonl" \
  "shapes:135M $L vote8=$OUT/shapes160-$L-vote8.jsonl" \
  "shapes:base greedy=$OUT/shapes160-base-greedy.jsonl" \
  "shapes:gemma greedy=$OUT/shapes160-gemma-greedy.jsonl" \
  "shapes:gemma vote8=$OUT/shapes160-gemma-vote8.jsonl" \
  "gsm8k:135M $L greedy=$OUT/gsm8k100-$L-greedy.jsonl" \
  "gsm8k:gemma greedy=$OUT/gsm8k100-gemma-greedy.jsonl" \
  "gsm8k:base greedy=$OUT/gsm8k100-base-greedy.jsonl" \
  "hash:135M $L greedy=$OUT/arith200-$L-greedy.jsonl" \
  "hash:gemma greedy=$R/arith-heldout200-gemma-greedy.jsonl" \
  "hash:gemma vote8=$R/arith-heldout200-gemma-vote8.jsonl" \
  "hash:base vote8=$R/arith-heldout200-base-vote8.jsonl" \
  --pair "135M $L greedy@1:gemma greedy@1" \
  --pair "135M $L vote8@8:gemma greedy@1" \
  --pair "135M $L vote8@8:gemma vote8@8" \
  --pair "135M $L vote8@8:135M $L greedy@1" | tee "$OUT/table.txt"
