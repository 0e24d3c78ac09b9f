"""The reward log: one JSON line per optimizer step, always written, kept consistent on resume.

A run can stop after a step whose checkpoint was never written (a crash, a second Ctrl-C);
resuming repeats that step, so lines past the checkpoint are dropped first: the log then has
each step exactly once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reasoncli.train.progress import StepStats

__all__ = ["LOG_FILE", "RewardLog", "read_log"]

LOG_FILE = "rewards.jsonl"


def read_log(path: Path) -> list[dict[str, Any]]:
    """The log's records; a torn last line (killed mid-write) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


class RewardLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def keep_until(self, step: int) -> None:
        """Drop records after `step` (the checkpoint being resumed from; 0 for a fresh start)."""
        kept = [r for r in read_log(self.path) if r["step"] <= step]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def append(self, stats: StepStats) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(stats.to_json()) + "\n")
            out.flush()
