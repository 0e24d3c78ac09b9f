#!/usr/bin/env bash
# Issue #28 section 2 on our own thinking model (the cold-started --format think run): the first
# 100 held-out problems of its run (the hash split, the same as arith-heldout200.jsonl's first
# 100), thinking budgets 16-256, "Wait" forcing to 64 tokens, and vote -n 4; then the reports
# and the forced-against-unforced pairing. Resumable: each results file is resumed if it exists.
#
#   bash benchmarks/issue28_think_eval.sh [MODEL [LABEL]]   # [smollm2-think-cold [think-cold]]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-smollm2-think-cold}
L=${2:-think-cold}
OUT=${OUT:-benchmarks/results/issue28}
SET=${SET:-benchmarks/results/arith-heldout200.jsonl}
N=${N:-100}
mkdir -p "$OUT"
. benchmarks/lib.sh

run() {  # run NAME ARGS...
  local name=$1 start=$SECONDS
  shift
  run_or_resume "$OUT/$name.jsonl" "$SET" --limit "$N" -m "$MODEL" --seed 0 "$@"
  stamp "$name" "$start"
}

run arith$N-$L-think-budgets -s think --budget-tokens 16,32,64,128,256
run arith$N-$L-think-wait64 -s think --max-tokens 256 --min-tokens 64
run arith$N-$L-vote4 -s vote -n 4 --max-tokens 128

for f in think-budgets think-wait64 vote4; do
  reason bench report "$OUT/arith$N-$L-$f.jsonl"
done > "$OUT/$L-reports.txt"
python benchmarks/serial_paired.py "$OUT/arith$N-$L-think-budgets.jsonl" \
  "$OUT/arith$N-$L-think-wait64.jsonl" | tee "$OUT/$L-serial-paired.txt"
