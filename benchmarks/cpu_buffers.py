"""What the CPU extra-buffer choice costs or saves: engine tok/s per mode, same run, interleaved.

The choice is made once per process (reasoncli/engine/cpu_buffers.py), so every (mode, rep)
runs in a child process of its own with `REASON_CPU_EXTRA_BUFFERS` set; the order of the modes
swaps every rep so drift hits both alike. Prints the median engine tok/s (prefill included, as
benchmarks/branches.py) per model, N and mode, and each mode's ratio to `off` (no extra buffer
at all, the blunt fix).

    python benchmarks/cpu_buffers.py [--reps 3] [--sizes 1,8,16] [--modes auto,off]
        [--quant q4_1,q4_0] [--max-tokens 64] [--threads 2]

`auto` is what `reason` chooses on this machine; `on` would add AMX where the build has it
(and crashes where AMX is unsafe: the child's signal is reported, not fatal).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from branches import CACHE_DIR, QUESTION, Setup, engine_run, quantize  # noqa: E402

from reasoncli.engine.branches import ContextTuning  # noqa: E402
from reasoncli.engine.model import LlamaModel, load_llama_cpp  # noqa: E402
from reasoncli.models.catalog import load_catalog  # noqa: E402
from reasoncli.models.resolve import resolve_model  # noqa: E402
from reasoncli.prompting import COT_SYSTEM, PromptStyle, render_prompt  # noqa: E402


def child(model_path: Path, sizes: list[int], max_tokens: int, threads: int) -> None:
    """Runs under one mode: prints {"mode": ..., "in_use": [...], "tok_s": {N: tok/s}}."""
    from reasoncli.engine import cpu_buffers

    load_llama_cpp()
    choice = cpu_buffers.current()
    with LlamaModel(model_path) as model:
        setup = Setup(model, threads, max_tokens, True, ContextTuning(), None)
        style = PromptStyle("chat", model.chat_template)
        text = render_prompt(style, QUESTION, system=COT_SYSTEM)
        prompt = model.tokenize(text)
        engine_run(setup, prompt, 2)  # warm-up: page cache, repacked weights
        rates = {}
        for n in sizes:
            tokens, seconds, _ = engine_run(setup, prompt, n)
            rates[n] = tokens / seconds
    print(json.dumps({"mode": choice.mode, "in_use": list(choice.in_use), "tok_s": rates}))


def measure(model: Path, mode: str, args: argparse.Namespace) -> dict | None:
    cmd = [sys.executable, __file__, "--child", str(model), "--sizes", args.sizes]
    cmd += ["--max-tokens", str(args.max_tokens), "--threads", str(args.threads)]
    env = {**os.environ, "REASON_CPU_EXTRA_BUFFERS": mode}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {model.name} {mode}: child exited {done.returncode}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="1,8,16")
    ap.add_argument("--modes", default="auto,off")
    ap.add_argument("--quant", default="q4_1,q4_0", help="q4_1 is the embedded file itself")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    if args.child:
        child(args.child, sizes, args.max_tokens, args.threads)
        return
    src = Path(resolve_model(None, load_catalog()).path)
    models = [
        src if q == "q4_1" else quantize(src, q, CACHE_DIR, args.threads)
        for q in args.quant.split(",")
    ]
    modes = args.modes.split(",")
    results: dict[tuple[str, str], list[dict]] = {}
    chosen: dict[str, str] = {}
    for rep in range(args.reps):
        order = modes if rep % 2 == 0 else modes[::-1]
        for model in models:
            for mode in order:
                out = measure(model, mode, args)
                if out:
                    rates = " ".join(f"N={n}:{r:.0f}" for n, r in out["tok_s"].items())
                    print(f"  {model.name} {mode}: {rates}", file=sys.stderr)
                    results.setdefault((model.name, mode), []).append(out["tok_s"])
                    chosen[mode] = (
                        f"{out['mode']} ({', '.join(out['in_use']) or 'no extra buffer'})"
                    )
        print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)
    print(
        f"engine tok/s, median of {args.reps} reps, {args.max_tokens} tokens a branch, "
        f"{args.threads} threads; modes: " + "; ".join(f"{m} = {c}" for m, c in chosen.items())
    )
    print(
        "| model | N | "
        + " | ".join(modes)
        + " | "
        + " | ".join(f"{m}/off" for m in modes if m != "off")
        + " |"
    )
    print("|---|---|" + "---|" * (len(modes) * 2 - 1))
    for model in models:
        for n in sizes:
            med = {}
            for mode in modes:
                runs = results.get((model.name, mode), [])
                med[mode] = statistics.median(r[str(n)] for r in runs) if runs else None
            cells = [f"{med[m]:.0f}" if med[m] else "crash" for m in modes]
            base = med.get("off")
            ratios = [
                f"{med[m] / base:.2f}x" if med[m] and base else "-" for m in modes if m != "off"
            ]
            print(f"| {model.name} | {n} | " + " | ".join(cells + ratios) + " |")


if __name__ == "__main__":
    main()
