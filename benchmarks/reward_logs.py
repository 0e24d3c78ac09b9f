"""Two or more GRPO runs side by side, from their `rewards.jsonl`: accuracy, reward spread,
entropy and completion length per window of steps.

Runs with the same --seed, task and group settings see the same prompts at every step, so a
window's difference is paired: it is the objective or the knob that changed, not the data.
Training accuracy is on training prompts, not a held-out score: use `reason bench` for that.

    python benchmarks/reward_logs.py "t10=runs/smollm2-arith-t10/rewards.jsonl" \\
        "pass@4=runs/smollm2-arith-pk4/rewards.jsonl" --window 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

COLUMNS = ("accuracy", "reward_std", "entropy", "completion_tokens")


def load(spec: str) -> tuple[str, list[dict[str, float]]]:
    label, sep, path = spec.partition("=")
    if not sep:
        raise SystemExit(f"{spec!r}: give LABEL=PATH")
    try:
        rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"{path}: {exc}") from None
    return label, rows


def window_means(rows: list[dict[str, float]], start: int, stop: int) -> dict[str, float]:
    inside = [r for r in rows if start < r["step"] <= stop]
    return {c: statistics.fmean(float(r[c]) for r in inside) for c in COLUMNS} if inside else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=path/to/rewards.jsonl")
    parser.add_argument("--window", type=int, default=20, help="Steps per row [20].")
    args = parser.parse_args()
    runs = [load(spec) for spec in args.runs]
    last = min(max(r["step"] for r in rows) for _, rows in runs)
    print(f"steps     {'run':<10} " + " ".join(f"{c:>17}" for c in COLUMNS))
    for start in range(0, int(last), args.window):
        stop = min(start + args.window, int(last))
        for label, rows in runs:
            means = window_means(rows, start, stop)
            cells = " ".join(f"{means[c]:>17.3f}" for c in COLUMNS)
            print(f"{start + 1:>3}-{stop:<4} {label:<10} {cells}")
    for label, rows in runs:
        med = statistics.median(float(r["step_s"]) for r in rows if r["step"] <= last)
        print(f"{label}: {len(rows)} steps logged, median {med:.1f} s per step")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(0)
