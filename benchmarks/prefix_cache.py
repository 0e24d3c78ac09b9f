"""What the prompt cache of `reason serve` saves a request: prefill to first token, cached or not.

Two shared contexts like `reason serve`'s (engine/pool.py) on the same model, one with the
prompt cache (engine/prefix_cache.py) and one without, take turns (the order flips every
request, so background load hits both): each opens a run's engine on reason's rendered prompt
of a question drawn from benchmarks/serve_load.py's five, adds --branches branches and decodes
their first token. That covers the prefill and the KV copies the cache queues for the next
decode. Prints the median time of each, their ratio, and the prompt tokens each decoded.
With --unique every question gets serve_load.py's "[load i]" marker first, so only the header
(chat template and system prompt) is shared, not whole prompts.

    python benchmarks/prefix_cache.py [--requests 40] [--threads 1] [--branches 4] [--unique]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import QUESTIONS  # noqa: E402

from reasoncli.engine.pool import SharedContext  # noqa: E402
from reasoncli.engine.sampling import Sampling  # noqa: E402
from reasoncli.models.catalog import load_catalog  # noqa: E402
from reasoncli.models.resolve import resolve_model  # noqa: E402
from reasoncli.session import Session, SessionOptions  # noqa: E402


def first_token_s(shared: SharedContext, tokens: list[int], branches: int) -> float:
    """Seconds from opening a run's engine to its branches' first sampled token."""
    t0 = time.perf_counter()
    with shared.open_engine(tokens, max_branches=branches, max_tokens=4) as engine:
        for i in range(branches):
            engine.add_branch(Sampling(temperature=0.8, seed=i), 4)
        engine.step()
        return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unique", action="store_true", help="a marker makes every prompt new")
    args = parser.parse_args()
    resolved = resolve_model(args.model, load_catalog())
    session = Session.load(resolved, SessionOptions(threads=args.threads))
    rng = random.Random(args.seed)

    def prompt(i: int) -> list[int]:
        question = rng.choice(QUESTIONS)
        if args.unique:
            question = f"[load {i}] {question}"
        return session.prompt_tokens(session.prompt_text(question))

    prompts = [session.prompt_tokens(session.prompt_text(q)) for q in QUESTIONS]
    contexts = {
        cache: SharedContext(
            session.model,
            max_branches=args.branches,
            max_runs=8,
            ctx_per_branch=512,
            n_threads=args.threads,
            prompt_cache=cache,
        )
        for cache in (True, False)
    }
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"prefix cache: {args.requests} requests each, {args.branches} branches, threads "
          f"{args.threads}, unique {args.unique}, model {resolved.path}")  # fmt: skip
    print(f"  load average {load}")
    print(f"  prompts of {sorted({len(p) for p in prompts})} tokens, the first "
          f"{common(prompts)} shared by all")  # fmt: skip
    times: dict[bool, list[float]] = {True: [], False: []}
    sent = 0
    try:
        for shared in contexts.values():  # warm-up: the cache holds every prompt afterwards
            for p in prompts:
                first_token_s(shared, p, args.branches)
        before = {c: (s.prefixes.stats.tokens_decoded if s.prefixes else 0)
                  for c, s in contexts.items()}  # fmt: skip
        for i in range(args.requests):
            tokens = prompt(i)
            sent += len(tokens) - 1
            order = (True, False) if i % 2 == 0 else (False, True)
            for cache in order:
                times[cache].append(first_token_s(contexts[cache], tokens, args.branches))
        cached_stats = contexts[True].prefixes
        decoded = cached_stats.stats.tokens_decoded - before[True] if cached_stats else 0
    finally:
        for shared in contexts.values():
            shared.close()
        session.close()
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"  median prefill + first token: cached {on * 1000:.1f} ms, uncached "
          f"{off * 1000:.1f} ms; cached / uncached {on / off:.2f}x")  # fmt: skip
    print(f"  prompt tokens decoded with the cache: {decoded} (without: {sent})")
    return 0


def common(prompts: list[list[int]]) -> int:
    n = 0
    while all(len(p) > n and p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


if __name__ == "__main__":
    sys.exit(main())
