"""reason serve's decode pool in one process: the fair run's plans, no HTTP, IPC or engine process.

`serve_load.py --peer llama-server --peer-decode-time` shows reason serve's `llama_decode` taking
longer a row than llama-server's decode for the same rows in the same number of calls. This
runs the same `SharedContext` that reason serve's engine process runs, on the same vote-4 plans
(`serve_load.fair_plans`, same seeds, reason serve's prompt text), from client threads in this
process, and prints the same figures per round: time inside `llama_decode`, rows, ms a row and
decode rounds. If the ms a row is as high here, the cost is in how the pool drives llama.cpp,
not in the server around it.

    python benchmarks/pool_inproc.py [--rounds 2] [--requests 40] [--clients 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import queue
import threading
import time

from serve_load import fair_plans, question_of

from reasoncli.cli.runner import ModelRequest, load_local_session
from reasoncli.engine.pool import SharedContext
from reasoncli.engine.sampling import Sampling
from reasoncli.serve.worker import EngineConfig

BRANCHES = 4  # vote-4


def run_round(
    shared: SharedContext, prompts: list[list[int]], clients: int, sampling: Sampling, tokens: int
) -> None:
    """Every prompt as one vote-4 request; `clients` threads take them in order, as the fair
    run's clients do."""
    work: queue.Queue[tuple[int, list[int]]] = queue.Queue()
    for item in enumerate(prompts):
        work.put(item)

    def client() -> None:
        while True:
            try:
                i, prompt = work.get_nowait()
            except queue.Empty:
                return
            with shared.open_engine(prompt, max_branches=BRANCHES, max_tokens=tokens) as engine:
                for b in range(BRANCHES):
                    engine.add_branch(sampling.with_seed(i * 10 + b), tokens)
                for _ in engine.run():
                    pass

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-branches", type=int, default=16)
    ap.add_argument("--max-requests", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", help="registry name or GGUF path (default: the embedded model)")
    args = ap.parse_args()

    config = EngineConfig(
        ModelRequest(args.model, threads=args.threads),
        max_branches=args.max_branches,
        max_requests=args.max_requests,
        ctx=args.ctx,
        threads=args.threads,
    )
    # the model, its sampling and the pool, as reason serve's engine process loads them
    session = load_local_session(config.model)
    shared = config.open_pool(session.model)
    print(f"{session.name}: {args.requests} vote-4 requests a round, {args.clients} "
          f"clients, {args.threads} thread(s), in one process")  # fmt: skip
    try:
        for rnd in range(args.rounds):
            seed = args.seed + 10 + rnd  # the seed serve_load.py's fair run gives this round
            plans = fair_plans(args.requests, "m", args.max_tokens, seed, ["vote-4"])
            prompts = [session.prompt_tokens(session.prompt_text(question_of(p))) for p in plans]
            ctx, scheduler = shared.context, shared.scheduler
            decode0, rows0, rounds0 = ctx.decode_s, ctx.rows_decoded, scheduler.rounds
            t0 = time.perf_counter()
            run_round(shared, prompts, args.clients, session.sampling, args.max_tokens)
            wall = time.perf_counter() - t0
            decode, rows = ctx.decode_s - decode0, ctx.rows_decoded - rows0
            print(f"  round {rnd}: {wall:.1f} s; llama_decode {decode:.1f} s for {rows} rows, "
                  f"{1000 * decode / max(rows, 1):.2f} ms a row, "
                  f"{scheduler.rounds - rounds0} decode rounds", flush=True)  # fmt: skip
    finally:
        shared.close()
        session.close()


if __name__ == "__main__":
    main()
