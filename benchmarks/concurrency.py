"""Concurrent `reason` processes on one machine: does each keep its speed, does a lone run?

Runs K copies of `reason ask ... --json` at once (K = 1, 2, 3 by default) under each setting and
prints every process's `tokens_per_s`, medians over repetitions that interleave the settings:

- `shared`: the default, threads follow the number of decoding processes (engine/core_share.py);
- `spin`: `REASON_SHARE_CORES=0`, OpenMP's default wait, every process keeps all its threads
  (what `reason` did before);
- `active` / `passive`: `OMP_WAIT_POLICY` set, threads spin / sleep at barriers (no sharing:
  the user's OpenMP setting wins).

    python benchmarks/concurrency.py [--reps 3] [--procs 1,2,3] [--max-tokens 96]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

SETTINGS = {
    "shared": {},
    "spin": {"REASON_SHARE_CORES": "0"},
    "active": {"OMP_WAIT_POLICY": "active"},
    "passive": {"OMP_WAIT_POLICY": "passive"},
}
QUESTION = "Write a short story about a cat."


def one_run(env: dict[str, str], branches: int, max_tokens: int) -> float:
    cmd = [sys.executable, "-m", "reasoncli", "ask", QUESTION, "--branches", str(branches)]
    cmd += ["--max-tokens", str(max_tokens), "--json", "--no-log"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["tokens_per_s"])


def at_once(k: int, extra: dict[str, str], branches: int, max_tokens: int) -> list[float]:
    env = {**os.environ, **extra}
    for var in ("OMP_WAIT_POLICY", "REASON_SHARE_CORES"):
        if var not in extra:
            env.pop(var, None)
    with ThreadPoolExecutor(k) as pool:
        return list(pool.map(lambda _: one_run(env, branches, max_tokens), range(k)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--procs", default="1,2,3")
    ap.add_argument("--branches", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    procs = [int(p) for p in args.procs.split(",")]
    one_run({**os.environ}, args.branches, 8)  # warm the page cache and the CPU probe's cache
    rates: dict[tuple[str, int], list[float]] = {}
    for rep in range(args.reps):
        for k in procs:
            for name, extra in SETTINGS.items():
                each = at_once(k, extra, args.branches, args.max_tokens)
                rates.setdefault((name, k), []).extend(each)
                print(
                    f"rep {rep} {name:8s} x{k}: {' '.join(f'{r:.0f}' for r in each)}",
                    file=sys.stderr,
                )
    print(
        f"tok/s of each process, median of {args.reps} reps (vote, {args.branches} branches, "
        f"{args.max_tokens} tokens a branch, {os.cpu_count()} CPUs)"
    )
    print("| processes at once | " + " | ".join(SETTINGS) + " |")
    print("|---|" + "---|" * len(SETTINGS))
    for k in procs:
        cells = [f"{statistics.median(rates[(name, k)]):.0f}" for name in SETTINGS]
        print(f"| {k} | " + " | ".join(cells) + " |")
    base = statistics.median(rates[("spin", 1)])
    shared = statistics.median(rates[("shared", 1)])
    print(f"lone run, shared vs spin: {shared / base:.2f}x")
    for k in procs[1:]:
        s, p = statistics.median(rates[("shared", k)]), statistics.median(rates[("spin", k)])
        q = statistics.median(rates[("passive", k)])
        print(f"{k} at once, shared vs spin: {s / p:.2f}x, shared vs passive: {s / q:.2f}x")


if __name__ == "__main__":
    main()
