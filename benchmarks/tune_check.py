"""Does `auto` do what `reason tune` predicted? A live `auto` run against tune's per-question
prediction for the model's tuned policy, on the held-out half.

    python benchmarks/tune_check.py AUTO_RUN.jsonl --from FILE... -m MODEL [--seed 0]

The policy is read from the model's models.yaml entry (REASON_MODELS points at another file).
For every held-out question (tune's split, `--seed`), the pilot's estimate picks the bin, the
policy's row (its only or smallest row, as `--budget-tokens` at that row picks it) the action,
and the action's outcome after the pilot is what tune predicted (`load_candidates`, the same
code tune fits with). Printed: predicted and live accuracy and tokens per question
(generated + verifier), and on how many questions they agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from reasoncli.models.catalog import load_catalog
from reasoncli.tune.candidates import load_candidates
from reasoncli.tune.difficulty import SCORED, estimate
from reasoncli.tune.fit import held_out_mask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("auto_run", type=Path)
    parser.add_argument("--from", dest="files", type=Path, action="append", required=True)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = load_catalog().find(args.model)
    policy = spec.policy if spec is not None else None
    if policy is None:
        print(f"{args.model} has no tuned policy in models.yaml", file=sys.stderr)
        return 2
    row = policy.budgets[0]
    cs = load_candidates(args.files, pilot=policy.pilot)
    by_action = {c.action: c for c in cs.candidates}
    live = {}
    for line in args.auto_run.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "sample":
            live[str(record["id"])] = record
    held = held_out_mask(cs.ids, args.seed)
    rows = []
    for i, qid in enumerate(cs.ids):
        if not held[i] or qid not in live:
            continue
        action = row.strategies[
            policy.bins[policy.bin_of(estimate(policy.estimate, cs.pilots.pilots[i]))].name
        ]
        candidate = by_action[action]
        outcome = (
            candidate.after_scored_pilot if policy.estimate in SCORED else candidate.after_pilot
        )
        assert outcome is not None, f"{action.label()} cannot follow the pilot"
        r = live[qid]
        rows.append(
            (outcome.correct[i], outcome.total[i], r["correct"], r["tokens"] + r["verifier_tokens"])
        )
    predicted, predicted_tokens, actual, actual_tokens = (
        np.array(c, dtype=float) for c in zip(*rows, strict=True)
    )
    print(
        f"{len(rows)} held-out questions, the policy's {row.budget} tok/q row: tune predicted "
        f"{predicted.mean():.1%} at {predicted_tokens.mean():.1f} tok/q, auto gave "
        f"{actual.mean():.1%} at {actual_tokens.mean():.1f}; same grade on "
        f"{int((predicted == actual).sum())}, the same tokens on "
        f"{int((np.abs(predicted_tokens - actual_tokens) < 0.5).sum())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
