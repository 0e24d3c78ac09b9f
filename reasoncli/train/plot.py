"""The reward curve of a run as a PNG, drawn only when matplotlib (the `plot` extra) is there.

Per-step rewards are noisy with a handful of prompts per step, so each series is drawn faintly
with a moving average on top, on `reasoncli.bench.plot`'s figure.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["PLOT_FILE", "plot_available", "write_reward_plot"]

PLOT_FILE = "rewards.png"
_SERIES: tuple[tuple[str, str], ...] = (
    ("reward", "reward (weighted sum)"),
    ("accuracy", "accuracy"),
    ("format", "format"),
    ("stop", "stop"),
)


def plot_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _moving_average(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def write_reward_plot(records: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Draw reward and its components per step (from the reward log's records)."""
    from reasoncli.bench.plot import figure

    with figure(path) as (axes, colors):
        ax = axes[0][0]
        steps = [r["step"] for r in records]
        window = max(1, len(records) // 20)
        for i, (key, label) in enumerate(_SERIES):
            values = [float(r.get(key) or 0.0) for r in records]
            color = colors[i % len(colors)]
            ax.plot(steps, values, color=color, alpha=0.25, linewidth=0.8)
            ax.plot(steps, _moving_average(values, window), color=color, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(f"mean over completions (moving average of {window})")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(title, fontsize=10)
        if records:
            ax.legend(fontsize=8)
    return path
