"""How well a verifier separates right from wrong branches in scored `reason bench` files.

For each best-of-n results file (its samples keep every branch's verifier score): the AUC
within a question (P(a correct branch outscores a wrong one to the same question), what
best-of-N needs), the pooled AUC over all branches, and the share of questions where the
verifier can matter at all (some right and some wrong branches).

    python benchmarks/verifier_auc.py results/bon16-orm.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reasoncli.train.verifier_job import auc, within_question_auc


def graded_scores(path: Path) -> list[list[tuple[float, float]]]:
    """Per question, (score, correct) for every branch with a score."""
    out = []
    for line in path.open(encoding="utf-8"):
        row = json.loads(line) if line.strip() else {}
        if row.get("type") != "sample" or "scores" not in row:
            continue
        right = {g["answer"]: bool(g["correct"]) for g in row["groups"]}
        pairs = zip(row["answers"], row["scores"], strict=True)
        out.append([(s, float(bool(a) and right.get(a, False))) for a, s in pairs if s is not None])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    print(f"{'file':<40} {'questions':>9} {'mixed':>6} {'AUC within q':>13} {'pooled AUC':>11}")
    for path in args.files:
        groups = graded_scores(path)
        mixed = sum(0 < sum(c for _, c in g) < len(g) for g in groups)
        within = within_question_auc(groups)
        pooled = auc([x for g in groups for x in g])
        fmt = lambda v: f"{v:.3f}" if v is not None else "–"  # noqa: E731
        print(f"{path.name:<40} {len(groups):>9} {mixed:>6} {fmt(within):>13} {fmt(pooled):>11}")


if __name__ == "__main__":
    main()
