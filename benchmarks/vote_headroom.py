"""How much a vote can gain over one sample, per difficulty, from one `bench` vote file.

Why `reason tune` found nothing to reallocate (#27). A question whose right answer is already
the majority of its branches is answered by one sample most of the time; one with no right
branch by no number of them; one whose right answer is not even the most common needs a
verifier to pick it, not a vote. Only questions whose right answer is the plurality but not the
majority gain from more votes. Grading is what the bench file recorded (`groups[].correct`: the
tool's own extraction and grading).

    python benchmarks/vote_headroom.py benchmarks/results/issue27/kl05/vote.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def right_share(sample: dict) -> tuple[float, bool]:
    """The share of the sample's branches whose answer was graded right, and whether a right
    answer has the most branches of any answer (a tie counts: the vote may pick it)."""
    right = {g["answer"] for g in sample["groups"] if g["correct"]}
    share = sum(a in right for a in sample["answers"]) / len(sample["answers"])
    top = max(g["count"] for g in sample["groups"])
    plurality = any(g["correct"] and g["count"] == top for g in sample["groups"])
    return share, plurality


def _pct(count: float, n: int) -> str:
    return f"{100 * count / n:.1f}%"


def headroom(path: Path) -> dict[str, list[tuple[float, bool]]]:
    """Each question's right share, by the difficulty prefix of its id (d1-, d2-, ...) and 'all'."""
    shares: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") != "sample":
            continue
        share = right_share(record)
        prefix = record["id"].split("-", 1)[0]
        if prefix.startswith("d") and prefix[1:].isdigit():
            shares[prefix].append(share)
        shares["all"].append(share)
    return shares


def report(shares: dict[str, list[tuple[float, bool]]], branches: int) -> str:
    head = (
        f"| slice | n | mean pass@1 | a right branch among {branches} | right majority "
        "| right plurality, not majority | right, not the plurality |"
    )
    lines = [head, "|---|--:|--:|--:|--:|--:|--:|"]
    for name in sorted(shares, key=lambda k: (k == "all", k)):
        v = shares[name]
        n = len(v)
        cells = [
            sum(x for x, _ in v),
            sum(x > 0 for x, _ in v),
            sum(x > 0.5 for x, _ in v),
            sum(p and x <= 0.5 for x, p in v),
            sum(x > 0 and not p for x, p in v),
        ]
        lines.append(f"| {name} | {n} | " + " | ".join(_pct(c, n) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="a `reason bench run -s vote -n N` results file")
    args = parser.parse_args(argv)
    shares = headroom(args.file)
    first = next(
        json.loads(line)
        for line in args.file.read_text().splitlines()
        if '"type": "sample"' in line
    )
    print(report(shares, len(first["answers"])), end="")


if __name__ == "__main__":
    main()
