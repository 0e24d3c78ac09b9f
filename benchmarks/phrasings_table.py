"""Issue #32's table: each model's greedy and maj@k on several held-out sets, on the questions
every run of a set answered, with Wilson 95% intervals and paired differences.

Runs of one set may cover different prefixes of it (`bench --limit`, or a run stopped with
Ctrl-C): every figure of a set is computed on the questions all its runs share, so a
difference is judged on the pairing. maj@k uses the tool's own vote and tie rule
(`reasoncli.bench.picks`, through `small_vs_big.right_at`); tokens are generated tokens per
question at that k.

    python benchmarks/phrasings_table.py "SET:LABEL=FILE" ... [--pair "LABEL A@k:LABEL B@k"]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from small_vs_big import bootstrap, right_at, samples  # noqa: E402

from reasoncli.bench.metrics import wilson  # noqa: E402


def cells(rows: list[dict]) -> list[int]:
    """The k to report for a vote run: 1 (greedy or one branch) and its full N."""
    n = min(r["branches"] for r in rows)
    return sorted({1, n})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="SET:LABEL=results.jsonl")
    parser.add_argument(
        "--pair",
        action="append",
        default=[],
        help="'A@k:B@k': A's maj@k minus B's maj@k on the same questions, in every set with both",
    )
    args = parser.parse_args()
    sets: dict[str, dict[str, list[dict]]] = {}
    for spec in args.runs:
        head, _, path = spec.rpartition("=")
        name, _, label = head.partition(":")
        sets.setdefault(name, {})[label] = samples(Path(path))
    for name, runs in sets.items():
        shared = set.intersection(*({r["id"] for r in rows} for rows in runs.values()))
        runs = {label: [r for r in rows if r["id"] in shared] for label, rows in runs.items()}
        sets[name] = runs
        print(f"\n{name}: {len(shared)} questions every run answered")
        print(f"{'run':<28} {'k':>3} {'accuracy':>9} {'95% interval':>15} {'tokens/q':>9}")
        for label, rows in runs.items():
            for k in cells(rows):
                right = sum(right_at(r, k, "maj") for r in rows)
                lo, hi = wilson(int(right), len(rows))
                tokens = sum(sum(r["branch_tokens"][:k]) for r in rows) / len(rows)
                print(
                    f"{label:<28} {k:>3} {right / len(rows):>9.1%} {lo:>7.1%}–{hi:<7.1%} "
                    f"{tokens:>9.0f}"
                )
        for pair in args.pair:
            a, _, b = pair.partition(":")
            (la, _, ka), (lb, _, kb) = a.rpartition("@"), b.rpartition("@")
            if la not in runs or lb not in runs:
                continue
            other = {r["id"]: r for r in runs[lb]}
            diffs = [
                right_at(r, int(ka), "maj") - right_at(other[r["id"]], int(kb), "maj")
                for r in runs[la]
            ]
            mean, lo, hi = bootstrap(diffs)
            print(
                f"{la} maj@{ka} - {lb} maj@{kb} = {mean * 100:+.1f} pts "
                f"({lo * 100:+.1f} to {hi * 100:+.1f}, paired bootstrap 95%)"
            )


if __name__ == "__main__":
    main()
