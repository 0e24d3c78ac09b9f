"""R1's training curves for a `--format think` run: reward, format compliance, accuracy and mean
thinking length per window of steps, from the run's `rewards.jsonl` and the `thinking.jsonl`
that `benchmarks/think_train.py` writes beside it; a markdown table on stdout and, with --plot,
the four curves per step (and their running mean over the window) in one PNG.

    python benchmarks/think_curves.py runs/smollm2-think-cold --window 4 --plot curves.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _rows(path: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    rewards = _rows(args.run_dir / "rewards.jsonl")
    thinking = {int(r["step"]): r for r in _rows(args.run_dir / "thinking.jsonl")}
    steps = [(r, thinking[int(r["step"])]) for r in rewards if int(r["step"]) in thinking]
    print(
        "| steps | reward | format reward = 1 | closed `</think>` | accuracy | "
        "mean thinking tokens | reward std | entropy |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i in range(0, len(steps), args.window):
        window = steps[i : i + args.window]
        first, last = int(window[0][0]["step"]), int(window[-1][0]["step"])

        def mean(key: str, source: int, window: list = window) -> float:
            return statistics.fmean(float(w[source][key]) for w in window)

        label = f"{first}-{last}" if last > first else str(first)
        print(
            f"| {label} | {mean('reward', 0):.3f} | {mean('format_ok', 1):.1%} | "
            f"{mean('closed', 1):.1%} | {mean('accuracy', 0):.1%} | "
            f"{mean('thinking_tokens', 1):.1f} | {mean('reward_std', 0):.3f} | "
            f"{mean('entropy', 0):.3f} |"
        )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = [int(r["step"]) for r, _ in steps]
        panels = [
            ("reward", [r["reward"] for r, _ in steps]),
            ("format compliance (format reward = 1)", [t["format_ok"] for _, t in steps]),
            ("accuracy (training prompts)", [r["accuracy"] for r, _ in steps]),
            ("mean thinking tokens", [t["thinking_tokens"] for _, t in steps]),
        ]
        fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
        for ax, (title, y) in zip(axes.flat, panels, strict=True):
            ax.plot(x, y, marker=".", linewidth=0.8, alpha=0.5, label="per step")
            k = args.window
            smooth = [statistics.fmean(y[max(0, j - k + 1) : j + 1]) for j in range(len(y))]
            ax.plot(x, smooth, linewidth=2, label=f"mean of the last {k}")
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        for ax in axes[1]:
            ax.set_xlabel("GRPO step")
        fig.suptitle(f"{args.run_dir.name}: R1's curves per step", fontsize=11)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
