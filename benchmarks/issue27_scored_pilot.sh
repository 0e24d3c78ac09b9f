#!/usr/bin/env bash
# Issue #27: `auto` scoring its own pilots with the ORM (the best difficulty estimate), checked
# live. Needs the files of benchmarks/issue27.sh and issue27_verifier.sh (the ORM included).
#
#   bash benchmarks/issue27_scored_pilot.sh          # ~10 min on 2 cores; resumes
#
#   1. `reason tune --dry-run` from every kl05 file at pilot sizes 1 to 4: with the scored
#      best-of-n file as the pilot, the `verifier-*` estimates compete with the others;
#   2. the pilot-1 fit's 256 tok/q row written with `--accept better` (no row is significant)
#      into a scratch copy of models.yaml (REASON_MODELS), so the user's file is untouched;
#   3. `reason bench -s auto --budget-tokens 256` following it on the mixed split: auto scores
#      one pilot with the ORM, bins it and runs the row's strategy;
#   4. benchmarks/tune_check.py: what auto did against what tune predicted, per question;
#   5. benchmarks/frontier.py with `--tuned` on that run (held-out half only).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=smollm2-arith-kl05
OUT=${OUT:-benchmarks/results/issue27}
SET=benchmarks/results/mixed-heldout300.jsonl
SCRATCH=${SCRATCH:-$(mktemp -d)}
. benchmarks/lib.sh
files=()
for f in "$OUT"/kl05/*.jsonl; do files+=(--from "$f"); done

report="$OUT/tune-kl05-scored-pilot.txt"
: > "$report"
for pilot in 1 2 3 4; do
  echo "=== --pilot $pilot" >> "$report"
  reason tune "${files[@]}" -m "$MODEL" --budgets 128,192,256,320,384,512,768,1024 \
    --pilot "$pilot" --estimate verifier-best --dry-run >> "$report" || true
done

cp "${REASON_MODELS:-$HOME/.config/reason/models.yaml}" "$SCRATCH/models.yaml"
export REASON_MODELS="$SCRATCH/models.yaml"
reason tune "${files[@]}" -m "$MODEL" --budgets 256 --pilot 1 --estimate verifier-best --accept better \
  > "$OUT/tune-kl05-scored-pilot1.txt"

file="$OUT/auto-tuned-kl05-scored.jsonl"  # beside the folders: frontier.py reads it with --tuned
run_or_resume "$file" "$SET" -m "$MODEL" -s auto --budget-tokens 256 --seed 0
python benchmarks/tune_check.py "$file" "${files[@]}" -m "$MODEL" | tee "$OUT/tune-check-scored.txt"
python benchmarks/frontier.py "$OUT" --model kl05 --tuned "$file" \
  --plot "$OUT/frontier-scored.png" > "$OUT/frontier-scored.txt"
cat "$OUT/frontier-scored.txt"
