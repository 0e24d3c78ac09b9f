"""Batched branches vs N sequential `create_completion` calls, on the embedded model.

Prints medians of interleaved runs and their ratios:
  1. aggregate decode tokens/s at N = 1, 4, 8, 16 for the engine and the baseline;
  2. the engine at N=16 as a fraction of the model's prompt-processing speed (the ceiling);
  3. wall time of `reason ask --branches 8` against a plain loop of 8 `create_chat_completion`;
  4. `reason --help` wall time.

    python benchmarks/branches.py [--reps 5] [--max-tokens 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from reasoncli.engine.branches import BranchEngine
from reasoncli.engine.model import LlamaModel
from reasoncli.engine.sampling import Sampling
from reasoncli.engine.sizing import plan_context
from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model
from reasoncli.prompting import COT_SYSTEM, PromptStyle, render_prompt

QUESTION = (
    "A farmer has 17 cows and buys 23 more. Each cow gives 8 litres of milk a day. "
    "How many litres does the farm produce in a week?"
)
SAMPLING = Sampling(temperature=0.8, top_p=0.95, top_k=40, min_p=0.05)


def engine_run(
    model: LlamaModel, prompt: list[int], n: int, max_tokens: int, threads: int
) -> tuple[int, float]:
    """Tokens generated and seconds, prefill included, context creation excluded."""
    plan = plan_context(
        n_prompt=len(prompt),
        max_new_tokens=max_tokens,
        max_branches=n,
        n_ctx_train=model.n_ctx_train,
        kv_bytes_per_token=model.kv_bytes_per_token,
    )
    with BranchEngine(model, plan, n_threads=threads, flash_attn=True) as engine:
        t0 = time.perf_counter()
        engine.set_prompt(prompt)
        branches = [engine.add_branch(SAMPLING.with_seed(i), max_tokens) for i in range(n)]
        for _ in engine.run():
            pass
        dt = time.perf_counter() - t0
    return sum(b.n_tokens for b in branches), dt


def baseline_run(llm: object, prompt_text: str, n: int, max_tokens: int) -> tuple[int, float]:
    """N sequential high-level calls; after the first, each reuses the cached prompt."""
    llm.reset()  # type: ignore[attr-defined]  # pay one prefill per run, as the engine does
    t0 = time.perf_counter()
    tokens = 0
    for i in range(n):
        out = llm.create_completion(  # type: ignore[attr-defined]
            prompt_text,
            max_tokens=max_tokens,
            temperature=SAMPLING.temperature,
            top_p=SAMPLING.top_p,
            top_k=SAMPLING.top_k,
            min_p=SAMPLING.min_p,
            seed=i,
        )
        tokens += out["usage"]["completion_tokens"]
    return tokens, time.perf_counter() - t0


def prompt_speed(model: LlamaModel, threads: int, n_tokens: int = 256) -> float:
    """Prompt-processing tokens/s: the compute ceiling for batched decoding."""
    tokens = (model.tokenize(QUESTION * 20, add_special=False) * 4)[:n_tokens]
    plan = plan_context(
        n_prompt=n_tokens,
        max_new_tokens=1,
        max_branches=1,
        n_ctx_train=model.n_ctx_train,
        kv_bytes_per_token=model.kv_bytes_per_token,
    )
    best = []
    for _ in range(3):
        with BranchEngine(model, plan, n_threads=threads, flash_attn=True) as engine:
            t0 = time.perf_counter()
            engine.set_prompt(tokens + [tokens[0]])
            best.append(n_tokens / (time.perf_counter() - t0))
    return statistics.median(best)


def timed(cmd: list[str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, input=stdin, text=True, check=True, capture_output=True)
    return time.perf_counter() - t0


CHAT_LOOP = textwrap.dedent(
    """
    import sys
    from llama_cpp import Llama
    llm = Llama(sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]), flash_attn=True,
                verbose=False)
    for i in range(8):
        llm.create_chat_completion(
            [{"role": "system", "content": sys.argv[4]}, {"role": "user", "content": sys.argv[5]}],
            max_tokens=int(sys.argv[3]), temperature=0.7, top_p=0.95, top_k=40, min_p=0.05,
            seed=i)
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--branches", default="1,4,8,16")
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument(
        "--baseline-no-flash-attn",
        action="store_true",
        help="run the sequential baseline without flash attention (its faster setting at N=1)",
    )
    args = ap.parse_args()
    from llama_cpp import Llama

    path = Path(resolve_model(None, load_catalog()).path)
    model = LlamaModel(path)
    prompt_text = render_prompt(
        PromptStyle("chat", model.chat_template), QUESTION, system=COT_SYSTEM
    )
    prompt = model.tokenize(prompt_text)
    llm = Llama(
        str(path),
        n_ctx=4096,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=not args.baseline_no_flash_attn,
        verbose=False,
    )
    ns = [int(x) for x in args.branches.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    print(
        f"model {path.name}, {args.threads} threads, {args.max_tokens} tokens/branch, "
        f"{args.reps} interleaved reps, medians",
        flush=True,
    )
    for rep in range(args.reps):
        for n in ns:
            for name in ("engine", "baseline") if rep % 2 == 0 else ("baseline", "engine"):
                if name == "engine":
                    tok, dt = engine_run(model, prompt, n, args.max_tokens, args.threads)
                else:
                    tok, dt = baseline_run(llm, prompt_text, n, args.max_tokens)
                rates.setdefault((name, n), []).append(tok / dt)
    print(f"\n{'N':>3} {'engine tok/s':>13} {'sequential tok/s':>17} {'ratio':>6}")
    for n in ns:
        e = statistics.median(rates[("engine", n)])
        b = statistics.median(rates[("baseline", n)])
        print(f"{n:>3} {e:>13.1f} {b:>17.1f} {e / b:>5.2f}x")
    pp = prompt_speed(model, args.threads)
    top = max(ns)
    e_top = statistics.median(rates[("engine", top)])
    print(f"\nprompt processing {pp:.1f} tok/s; engine at N={top} reaches {e_top / pp:.0%} of it")
    llm.close()

    if args.skip_cli:
        return
    reason = [sys.executable, "-m", "reasoncli"]
    ask_cmd = reason + [
        "ask",
        QUESTION,
        "--branches",
        "8",
        "--max-tokens",
        str(args.max_tokens),
        "--quiet",
        "--threads",
        str(args.threads),
    ]
    loop_cmd = [
        sys.executable,
        "-c",
        CHAT_LOOP,
        str(path),
        str(args.threads),
        str(args.max_tokens),
        COT_SYSTEM,
        QUESTION,
    ]
    ask_t, loop_t = [], []
    for rep in range(max(3, args.reps // 2)):
        order = [(ask_cmd, ask_t), (loop_cmd, loop_t)]
        for cmd, sink in order if rep % 2 == 0 else order[::-1]:
            sink.append(timed(cmd))
    a, lp = statistics.median(ask_t), statistics.median(loop_t)
    print(
        f"\nreason ask --branches 8: {a:.2f}s; loop of 8 create_chat_completion: {lp:.2f}s; "
        f"speedup {lp / a:.2f}x (both include model load)"
    )
    reason_bin = str(Path(sys.executable).with_name("reason"))
    help_t = [timed([reason_bin, "--help"]) for _ in range(7)]
    print(f"reason --help: median {statistics.median(help_t) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
