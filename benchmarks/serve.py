"""`reason serve` throughput and overhead on the embedded model, against same-run baselines.

1. Shared batches: 4 clients at once, each asking `vote` with 4 branches, against the same 4
   requests one after another. Aggregate generated tokens/s, and the ratio (goal >= 1.5x).
2. Server overhead: one `vote-8` request through the server against the same run in-process
   (the strategy on a loaded session, as `reason ask --branches 8` runs it), same seed and
   tokens. Extra wall time (goal <= 10%).

Reps are interleaved (concurrent, sequential, server, in-process, ...) and medians reported.

    python benchmarks/serve.py [--reps 5] [--max-tokens 128] [--threads 2] [--model NAME|PATH]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import httpx2 as httpx
import reason_server

QUESTIONS = [
    "A farmer has 17 cows and buys 23 more. How many cows does he have?",
    "Tom reads 12 pages a day for 9 days. How many pages does he read?",
    "A box holds 48 apples. 15 are eaten. How many are left?",
    "What is 7 times 8 plus 6?",
]


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    serve_args = ["--no-log", "--max-branches", "16", "--threads", str(args.threads)]
    if args.model:
        serve_args += ["--model", args.model]
    proc, base = reason_server.spawn(serve_args, {**os.environ})
    return proc, f"{base}/v1"


@functools.cache
def served_model(url: str) -> str:
    """The id `/v1/models` lists for the loaded model (the strategy goes in front of it)."""
    return str(httpx.get(f"{url}/models", timeout=10).json()["data"][0]["id"])


def request(url: str, question: str, branches: int, seed: int, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": f"vote-{branches}-{served_model(url)}",
        "messages": [{"role": "user", "content": question}],
        "max_tokens": max_tokens,
        "seed": seed,
    }
    r = httpx.post(f"{url}/chat/completions", json=body, timeout=600)
    r.raise_for_status()
    return r.json()


def rounds(url: str) -> tuple[int, int, float]:
    h = httpx.get(url.removesuffix("/v1") + "/health", timeout=10).json()
    return h["decode_rounds"], h["shared_rounds"], h["round_seconds"]


def concurrent(url: str, max_tokens: int) -> tuple[int, float]:
    out: list[dict[str, Any]] = []
    before = rounds(url)
    threads = [
        threading.Thread(
            target=lambda i=i, q=q: out.append(request(url, q, 4, i * 100, max_tokens))
        )
        for i, q in enumerate(QUESTIONS)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    after = rounds(url)
    total, shared, busy = (a - b for a, b in zip(after, before, strict=True))
    print(
        f"  concurrent: {total} decode rounds, {shared} with several requests, "
        f"{busy / dt:.0%} of the wall time in rounds",
        file=sys.stderr,
    )
    return sum(r["usage"]["completion_tokens"] for r in out), dt


def sequential(url: str, max_tokens: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    out = [request(url, q, 4, i * 100, max_tokens) for i, q in enumerate(QUESTIONS)]
    dt = time.perf_counter() - t0
    return sum(r["usage"]["completion_tokens"] for r in out), dt


def through_server(url: str, max_tokens: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = request(url, QUESTIONS[0], 8, 0, max_tokens)
    return r["usage"]["completion_tokens"], time.perf_counter() - t0


def in_process(session: Any, max_tokens: int) -> tuple[int, float]:
    from reasoncli.strategies.base import StrategyOptions, get_strategy

    options = StrategyOptions(branches=8, max_tokens=max_tokens, seed=0)
    t0 = time.perf_counter()
    result = get_strategy("vote").run(QUESTIONS[0], session, options, lambda e: None)
    return result.generated_tokens, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="a registry name or GGUF path (default: the embedded model)")
    ap.add_argument(
        "--overhead-only", action="store_true", help="only part 2: vote-8 served vs in-process"
    )
    args = ap.parse_args()

    from reasoncli.cli.runner import ModelRequest, load_session

    session = load_session(ModelRequest(args.model, threads=args.threads, backend="local"))
    proc, url = start_server(args)
    runs: dict[str, list[tuple[int, float]]] = {k: [] for k in ("conc", "seq", "srv", "inproc")}
    try:
        concurrent(url, 8)  # warm up both sides, batch shapes included
        in_process(session, 8)
        for rep in range(args.reps):
            order = (
                [] if args.overhead_only else ["conc", "seq"] if rep % 2 == 0 else ["seq", "conc"]
            )
            order += ["srv", "inproc"] if rep % 2 == 0 else ["inproc", "srv"]
            for name in order:
                fn = {
                    "conc": lambda: concurrent(url, args.max_tokens),
                    "seq": lambda: sequential(url, args.max_tokens),
                    "srv": lambda: through_server(url, args.max_tokens),
                    "inproc": lambda: in_process(session, args.max_tokens),
                }[name]
                runs[name].append(fn())
            print(f"rep {rep + 1}/{args.reps}: " + ", ".join(
                f"{k} {v[-1][0]} tok {v[-1][1]:.2f} s" for k, v in runs.items() if v
            ), file=sys.stderr)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)
        session.close()

    def tps(name: str) -> float:
        return statistics.median(tok / dt for tok, dt in runs[name])

    def wall(name: str) -> float:
        return statistics.median(dt for _, dt in runs[name])

    same = {tok for tok, _ in runs["srv"]} == {tok for tok, _ in runs["inproc"]}
    model = args.model or "embedded model"
    print(f"reason serve, {model}, {args.threads} threads, medians of {args.reps} reps")
    print(f"{'':38} {'tok/s':>8} {'wall s':>8}")
    if not args.overhead_only:
        print(f"{'4 clients at once, vote-4 each':38} {tps('conc'):8.1f} {wall('conc'):8.2f}")
        print(f"{'the same 4 requests one by one':38} {tps('seq'):8.1f} {wall('seq'):8.2f}")
        print(f"  shared-batch ratio: {tps('conc') / tps('seq'):.2f}x (goal >= 1.5x)")
    print(f"{'vote-8 through the server':38} {tps('srv'):8.1f} {wall('srv'):8.2f}")
    print(f"{'vote-8 in-process':38} {tps('inproc'):8.1f} {wall('inproc'):8.2f}")
    extra = wall("srv") / wall("inproc") - 1
    print(f"  server overhead: {extra:+.1%} wall time (goal <= +10%); same tokens: {same}")


if __name__ == "__main__":
    main()
