"""Issue #28's serial measurement, paired: `think` with "Wait" forcing (`--min-tokens`) against
the same questions' unforced `think`, from `reason bench run` result files.

    python benchmarks/serial_paired.py UNFORCED.jsonl FORCED.jsonl [FORCED.jsonl ...]

UNFORCED is a `-s think --budget-tokens ...` run (its largest budget is the comparison); each
FORCED file is a `-s think --min-tokens M` run. Correctness is what `bench` graded (the tool's
own extraction and grading); the interval is a paired bootstrap over questions (4000 seeded
resamples).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path


def samples(path: Path) -> tuple[dict, dict[str, dict]]:
    run, rows = {}, {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "run" and not run:
            run = record
        elif record.get("type") == "sample":
            rows.setdefault(record.get("budget_tokens"), {})[record["id"]] = record
    return run, rows


def paired_interval(diff: list[int], resamples: int = 4000) -> tuple[float, float]:
    rng = random.Random(0)
    means = sorted(sum(rng.choices(diff, k=len(diff))) / len(diff) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples)]


def main(argv: list[str]) -> int:
    _, unforced = samples(Path(argv[0]))
    base = unforced[max(b for b in unforced if b is not None)]
    for name in argv[1:]:
        run, forced = samples(Path(name))
        rows = next(iter(forced.values()))
        ids = [i for i in rows if i in base]
        right = [int(rows[i]["correct"]) for i in ids]
        before = [int(base[i]["correct"]) for i in ids]
        lo, hi = paired_interval([a - b for a, b in zip(right, before, strict=True)])
        tokens = sum(rows[i]["tokens"] for i in ids) / len(ids)
        tokens_before = sum(base[i]["tokens"] for i in ids) / len(ids)
        waits = sum(json.dumps(rows[i]["texts"]).count("Wait") for i in ids)
        print(
            f"--min-tokens {run.get('min_tokens')}: {sum(right) / len(ids):.1%} at {tokens:.0f} "
            f"tok/q against unforced {sum(before) / len(ids):.1%} at {tokens_before:.0f} tok/q on "
            f"{len(ids)} questions: {100 * (sum(right) - sum(before)) / len(ids):+.1f} points "
            f"({100 * lo:+.1f} to {100 * hi:+.1f}); {waits} 'Wait's appended"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
