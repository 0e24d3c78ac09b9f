#!/usr/bin/env bash
# Issue #27's figure: the serial-vs-parallel frontier on a mixed-difficulty held-out split.
#
#   bash benchmarks/frontier.sh [MODEL [LABEL]]      # [smollm2-arith-kl05 [kl05]]
#
# The split (benchmarks/results/mixed-heldout300.jsonl): 100 hash-held-out arithmetic problems
# of each difficulty 1, 2 and 3 (`reason train heldout --task arithmetic --difficulty D -n 100`),
# ids prefixed d1-/d2-/d3-. Every run is a `reason bench` results file in OUT, resumed when it
# exists, so the script can be stopped and started again:
#   - `reason tune SET -m MODEL -o OUT/LABEL` generates the tune ladder: vote -n 16 (maj@1..16),
#     greedy, think at every budget, revise;
#   - think with "Wait" forcing (--min-tokens 64 and 128), DeepConf's weighted-vote at 16,
#     auto with its constants, gemma-3-270m greedy and vote -n 8 (the bigger model);
#   - `reason tune --from` every file of the model: the policy (written to models.yaml only
#     when it beats the best uniform strategy held out), and its report;
#   - benchmarks/frontier.py: the table and the PNG (accuracy with 95% intervals against mean
#     tokens per question, on the tune's held-out half).
#   - benchmarks/vote_headroom.py: per difficulty, how many questions a vote could still win
#     (why no policy pays, when none does).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-smollm2-arith-kl05}
L=${2:-kl05}
OUT=${OUT:-benchmarks/results/issue27}
SET=benchmarks/results/mixed-heldout300.jsonl
BUDGETS=${BUDGETS:-16,32,64,128,256,512}
mkdir -p "$OUT/$L" "$OUT/gemma"
. benchmarks/lib.sh

bench() {  # bench FILE ARGS...: run (or resume) one results file
  local file=$1 start=$SECONDS
  shift
  run_or_resume "$file" "$SET" --max-tokens 128 --seed 0 "$@"
  stamp "$(basename "$(dirname "$file")")/$(basename "$file" .jsonl)" "$start"
}

start=$SECONDS
reason tune "$SET" -m "$MODEL" -o "$OUT/$L" --budgets "$BUDGETS" -n 16 --max-tokens 128 \
  --dry-run -q >/dev/null || [ $? -eq 10 ]
stamp "$L/tune-ladder" "$start"
bench "$OUT/$L/think-wait64.jsonl" -m "$MODEL" -s think --budget-tokens 512 --min-tokens 64
bench "$OUT/$L/think-wait128.jsonl" -m "$MODEL" -s think --budget-tokens 512 --min-tokens 128
bench "$OUT/$L/auto.jsonl" -m "$MODEL" -s auto
bench "$OUT/gemma/greedy.jsonl" -m gemma-3-270m -s vote -n 1 -t 0
bench "$OUT/gemma/vote.jsonl" -m gemma-3-270m -s vote -n 8
bench "$OUT/$L/weighted-vote.jsonl" -m "$MODEL" -s weighted-vote -n 16

files=()
for f in "$OUT/$L"/*.jsonl; do files+=(--from "$f"); done
set +e
reason tune "${files[@]}" -m "$MODEL" --budgets "$BUDGETS" > "$OUT/tune-$L.txt"
echo "tune exit $?" >> "$OUT/tune-$L.txt"
set -e
cat "$OUT/tune-$L.txt"

python benchmarks/frontier.py "$OUT" --model "$L" --plot "$OUT/frontier.png" > "$OUT/frontier.txt"
python benchmarks/vote_headroom.py "$OUT/$L/vote.jsonl" > "$OUT/vote-headroom.txt"
