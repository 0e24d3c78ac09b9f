"""One `llama_decode` of N single-token rows, by how the rows' sequence ids are laid out.

With one KV stream per sequence (the engine's default), llama.cpp puts only consecutive,
increasing sequence ids into one micro-batch, and each micro-batch is a pass over the weights.
This prints the time of one decode step for the same N rows on ids 1..N, on N..1, and on every
other id, next to N/2 rows and one row, for split and unified KV (medians of interleaved reps).
It is why the engine keeps live branches on consecutive ids (`reasoncli/engine/slots.py`).

    python benchmarks/seq_layout.py [--rows 16] [--reps 7] [--threads 2] [--model NAME|PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time

from reasoncli.engine.branches import BranchEngine, ContextTuning
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.sizing import ContextPlan
from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model

TEXT = "Once upon a time there was a farmer who had many cows and " * 4


def layouts(n: int) -> dict[str, list[int]]:
    return {
        "ids 1..N": list(range(1, n + 1)),
        "ids N..1": list(range(n, 0, -1)),
        "every other id": list(range(1, 2 * n + 1, 2)),
        "N/2 rows, ids 1..N/2": list(range(1, n // 2 + 1)),
        "N/2 rows, every other": list(range(1, n + 1, 2)),
        "1 row": [1],
    }


def measure(model: LlamaModel, n: int, reps: int, threads: int, unified: bool) -> dict[str, float]:
    plan = ContextPlan(n_seq_max=2 * n + 1, n_ctx_seq=512, n_batch=512, kv_bytes=0)
    engine = BranchEngine.open(
        model, plan, n_threads=threads, tuning=ContextTuning(kv_unified=unified)
    )
    prompt = model.tokenize(TEXT)
    engine.set_prompt(prompt)
    for seq in range(1, 2 * n + 1):
        engine.context.copy_seq(engine.prompt_seq, seq)
    pos = [len(prompt)] * (2 * n + 1)  # the prompt is decoded whole, last token included

    def step(seqs: list[int]) -> float:
        rows = []
        for seq in seqs:
            rows.append((prompt[5], pos[seq], seq, True))
            pos[seq] += 1
        engine.context.fill_batch(rows)
        t0 = time.perf_counter()
        engine.context.decode()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in layouts(n)}
    for _ in range(reps):
        for name, seqs in layouts(n).items():
            times[name].append(step(seqs))
    engine.close()
    return {name: 1000 * statistics.median(ts[1:]) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="registry name or GGUF path (default: the embedded model)")
    args = ap.parse_args()
    model = LlamaModel(resolve_model(args.model, load_catalog()).path)
    split = measure(model, args.rows, args.reps, args.threads, unified=False)
    unified = measure(model, args.rows, args.reps, args.threads, unified=True)
    head = f"{model.path.name}, N = {args.rows}, {args.threads} threads"
    print(f"{head}, medians of {args.reps} reps")
    print(f"{'rows':24} {'split KV ms':>12} {'unified KV ms':>14}")
    for name in split:
        print(f"{name:24} {split[name]:12.1f} {unified[name]:14.1f}")
    ratio = split["ids N..1"] / split["ids 1..N"]
    print(f"split KV, ids N..1 against 1..N: {ratio:.2f}x the time per step")
    model.close()


if __name__ == "__main__":
    main()
