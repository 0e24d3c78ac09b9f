#!/usr/bin/env bash
# Issue #27's verifier rows: an ORM for the policy, best-of-N and its weighted vote on the
# mixed-difficulty split, `reason tune` refit with them, and auto following the tuned policy.
#
#   bash benchmarks/issue27_verifier.sh [MODEL [LABEL]]      # [smollm2-arith-kl05 [kl05]]
#
# Every stage resumes (rollouts --resume, train verifier reruns from its run directory, bench
# --resume), so the script can be stopped and started again:
#   1. training questions: 200 each of difficulty 1, 2 and 3 from the task's *train* split
#      (the mixed split is held out by the same hash rule, so no question is shared);
#   2. `reason rollouts` 8 solutions each by MODEL (max 128 tokens), graded;
#   3. `reason train verifier --kind orm` fine-tunes MODEL into a Yes/No judge on them (F16),
#      registered as LABEL-orm; its summary has the held-out AUCs;
#   4. `reason bench` best-of-n -n 16 with the ORM on the mixed split: tune reads best-of-n and
#      the ORM-weighted vote at every n from it, with the verifier's tokens counted;
#   5. `reason tune --from` every file of the model, now with the verifier rows (writes the
#      policy to models.yaml only when it beats the best uniform strategy held out);
#   6. when it wrote one, `reason bench -s auto` following it, and benchmarks/frontier.py with
#      `--tuned` on that run.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-smollm2-arith-kl05}
L=${2:-kl05}
OUT=${OUT:-benchmarks/results/issue27}
WORK=${WORK:-$HOME/reason-runs/$L-orm}
SET=benchmarks/results/mixed-heldout300.jsonl
BUDGETS=${BUDGETS:-16,32,64,128,256,512}
ORM=$L-orm
mkdir -p "$OUT/$L" "$WORK"
. benchmarks/lib.sh

start=$SECONDS
if [ ! -s "$WORK/train.jsonl" ]; then
  python - "$WORK/train.jsonl" <<'EOF'
import json, sys
from reasoncli.train.arithmetic import generate
with open(sys.argv[1], "w") as f:
    for d in (1, 2, 3):
        for i, p in enumerate(generate(200, difficulty=d, seed=27)):
            f.write(json.dumps({"id": f"d{d}-t{i}", "question": p.question, "answer": p.answer}) + "\n")
EOF
fi

common=(-m "$MODEL" -n 8 --max-tokens 128 -q)
if [ -s "$WORK/rollouts.jsonl" ]; then
  reason rollouts "$WORK/train.jsonl" "${common[@]}" --resume "$WORK/rollouts.jsonl" >/dev/null
else
  reason rollouts "$WORK/train.jsonl" "${common[@]}" -o "$WORK/rollouts.jsonl" >/dev/null
fi
stamp "$L/rollouts-600x8" "$start"

start=$SECONDS
reason train verifier "$WORK/rollouts.jsonl" --kind orm -m "$MODEL" --out "$ORM" \
  --run-dir "$WORK/orm" --steps 450 --heldout 48 --json -q > "$OUT/$L-orm-summary.json" \
  || reason train verifier "$WORK/rollouts.jsonl" --kind orm -m "$MODEL" --out "$ORM" \
       --run-dir "$WORK/orm" --steps 450 --heldout 48 --force --json -q > "$OUT/$L-orm-summary.json"
stamp "$L/orm-train" "$start"

start=$SECONDS
file="$OUT/$L/best-of-n-orm.jsonl"
run_or_resume "$file" "$SET" -m "$MODEL" -s best-of-n -n 16 --verifier "orm:$ORM" \
  --max-tokens 128 --seed 0
stamp "$L/best-of-n-orm" "$start"

files=()
for f in "$OUT/$L"/*.jsonl; do files+=(--from "$f"); done
set +e
reason tune "${files[@]}" -m "$MODEL" --budgets "$BUDGETS" \
  > "$OUT/tune-$L-orm.txt"
code=$?
echo "tune exit $code" >> "$OUT/tune-$L-orm.txt"
set -e
cat "$OUT/tune-$L-orm.txt"

tuned=()
if [ "$code" -eq 0 ]; then
  start=$SECONDS
  file="$OUT/auto-tuned-$L.jsonl"  # beside the folders: frontier.py reads it with --tuned
  run_or_resume "$file" "$SET" -m "$MODEL" -s auto --max-tokens 128 --seed 0
  stamp "$L/auto-tuned" "$start"
  tuned=(--tuned "$file")
fi
python benchmarks/frontier.py "$OUT" --model "$L" "${tuned[@]}" --plot "$OUT/frontier.png" \
  > "$OUT/frontier.txt"
