"""Batched branches vs N sequential `create_completion` calls (issue #13).

One command prints, as medians of `--reps` interleaved repetitions (engine and baseline swap
order every rep, so drift from a busy machine hits both alike):
  1. for each N in `--sizes`: engine tok/s, sequential tok/s, their ratio, and the engine as a
     fraction of prompt-processing tok/s (PP, measured in the same reps: the compute ceiling),
     then the engine's decode-only tok/s (prefill excluded: `llama-batched-bench`'s S_TG);
  2. wall time of `reason ask --branches 8` against a plain loop of 8 `create_chat_completion`
     (whole processes, model load included) and `reason --help`.

The lever flags (`--n-batch`, `--n-ubatch`, `--threads-batch`, `--type-k/--type-v`,
`--no-flash-attn`, `--kv-unified`) go to the engine's context and, where the high-level API
has them, to the baseline too; `reason ask` runs with its defaults. `--quant q4_0`
requantizes the model once into `--cache-dir` and benchmarks that file instead.

    python benchmarks/branches.py [--reps 5] [--max-tokens 128] [--threads 2] [--sizes 1,4,8]
    python benchmarks/branches.py --model big.gguf --gpu-layers -1 --sizes 1,8,32,64 --skip-cli
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from reasoncli.engine.branches import BranchEngine, ContextTuning, ggml_type
from reasoncli.engine.model import LlamaModel, ModelLoadOptions, load_llama_cpp
from reasoncli.engine.sampling import Sampling
from reasoncli.engine.sizing import ContextPlan, offload_for, plan_for_model
from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model
from reasoncli.prompting import COT_SYSTEM, PromptStyle, render_prompt

QUESTION = (
    "A farmer has 17 cows and buys 23 more. Each cow gives 8 litres of milk a day. "
    "How many litres does the farm produce in a week?"
)
SAMPLING = Sampling(temperature=0.8, top_p=0.95, top_k=40, min_p=0.05)
CACHE_DIR = Path.home() / ".cache" / "reasoncli-bench"


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything one engine or baseline call needs besides N."""

    model: LlamaModel
    threads: int
    max_tokens: int
    flash_attn: bool
    tuning: ContextTuning
    n_batch: int | None


def plan_for(setup: Setup, n_prompt: int, n: int, max_tokens: int) -> ContextPlan:
    model = setup.model
    plan = plan_for_model(model, n_prompt=n_prompt, max_new_tokens=max_tokens, max_branches=n)
    # The engine chunks the prompt and packs branches into n_batch rows, so any size works.
    return dataclasses.replace(plan, n_batch=setup.n_batch) if setup.n_batch else plan


def engine(setup: Setup, plan: ContextPlan) -> BranchEngine:
    return BranchEngine.open(
        setup.model, plan, n_threads=setup.threads, flash_attn=setup.flash_attn, tuning=setup.tuning
    )


def engine_run(setup: Setup, prompt: list[int], n: int) -> tuple[int, float, float]:
    """Tokens generated, seconds with the prefill and seconds without it (context creation
    excluded). Without it is what `llama-batched-bench` calls TG; with it, its T column."""
    with engine(setup, plan_for(setup, len(prompt), n, setup.max_tokens)) as e:
        t0 = time.perf_counter()
        e.set_prompt(prompt)
        t_prefill = time.perf_counter()
        branches = [e.add_branch(SAMPLING.with_seed(i), setup.max_tokens) for i in range(n)]
        for _ in e.run():
            pass
        t1 = time.perf_counter()
    return sum(b.n_tokens for b in branches), t1 - t0, t1 - t_prefill


def baseline_run(llm: Any, prompt_text: str, n: int, max_tokens: int) -> tuple[int, float]:
    """N sequential high-level calls; after the first, each reuses the cached prompt."""
    llm.reset()  # pay one prefill per run, as the engine does
    t0 = time.perf_counter()
    tokens = 0
    for i in range(n):
        out = llm.create_completion(
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


def prompt_speed(setup: Setup, n_tokens: int) -> float:
    """Prompt-processing tokens/s with the same context settings: the ceiling for batching."""
    model = setup.model
    tokens = (model.tokenize(QUESTION * 40, add_special=False) * 4)[:n_tokens]
    with engine(setup, plan_for(setup, n_tokens + 1, 1, 1)) as e:
        t0 = time.perf_counter()
        e.set_prompt(tokens + [tokens[0]])  # decodes exactly `n_tokens`
        return n_tokens / (time.perf_counter() - t0)


def quantize(src: Path, ftype: str, cache: Path, threads: int) -> Path:
    """`src` requantized to `ftype` (e.g. q4_0, q8_0, iq4_nl) once; later runs reuse the file."""
    out = cache / f"{src.stem}.{ftype.lower()}.gguf"
    if out.exists():
        return out
    lib = load_llama_cpp()
    code = getattr(lib, f"LLAMA_FTYPE_MOSTLY_{ftype.upper()}", None)
    if code is None:
        sys.exit(f"unknown --quant {ftype!r}: use a LLAMA_FTYPE_MOSTLY_* suffix such as q4_0")
    params = lib.llama_model_quantize_default_params()
    params.ftype = code
    params.nthread = threads
    params.allow_requantize = True  # the embedded model is already quantized
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    t0 = time.perf_counter()
    rc = lib.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if rc != 0:
        tmp.unlink(missing_ok=True)
        sys.exit(f"llama_model_quantize failed with code {rc}")
    tmp.rename(out)
    print(f"quantized {src.name} -> {out} in {time.perf_counter() - t0:.1f}s", flush=True)
    return out


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, text=True, check=True, capture_output=True)
    return time.perf_counter() - t0


CHAT_LOOP = textwrap.dedent(
    """
    import sys
    from llama_cpp import Llama
    llm = Llama(sys.argv[1], n_ctx=2048, n_threads=int(sys.argv[2]),
                flash_attn=sys.argv[6] == "1", n_gpu_layers=int(sys.argv[7]), verbose=False)
    for i in range(8):
        llm.create_chat_completion(
            [{"role": "system", "content": sys.argv[4]}, {"role": "user", "content": sys.argv[5]}],
            max_tokens=int(sys.argv[3]), temperature=0.7, top_p=0.95, top_k=40, min_p=0.05,
            seed=i)
    """
)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", "--branches", default="1,4,8,16,32", help="values of N")
    ap.add_argument("--skip-cli", action="store_true", help="no `reason ask`/--help timings")
    ap.add_argument("--model", type=Path, help="a .gguf (default: the embedded model)")
    ap.add_argument("--gpu-layers", type=int, help="layers to offload, -1 all (default: auto)")
    ap.add_argument("--quant", help="requantize first: q4_0, q8_0, iq4_nl, ... (cached)")
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="for --quant files")
    ap.add_argument("--pp-tokens", type=int, default=256, help="prompt length for PP tok/s")
    lever = ap.add_argument_group("levers (default: what `reason` uses)")
    lever.add_argument("--n-batch", type=int, help="logical batch (default: max(prompt, N))")
    lever.add_argument("--n-ubatch", type=int, help="physical micro-batch (default 512)")
    lever.add_argument("--threads-batch", type=int, help="threads for batches (default --threads)")
    lever.add_argument("--type-k", help="K cache type: f16 (default), q8_0, q4_0")
    lever.add_argument("--type-v", help="V cache type (quantized needs flash attention)")
    lever.add_argument("--no-flash-attn", action="store_true", help="engine and baseline")
    lever.add_argument("--kv-unified", action="store_true", help="one KV stream for all branches")
    ap.add_argument(
        "--baseline-no-flash-attn",
        action="store_true",
        help="run only the sequential baseline without flash attention",
    )
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    from llama_cpp import Llama

    path = args.model or Path(resolve_model(None, load_catalog()).path)
    if args.quant:
        path = quantize(path, args.quant, args.cache_dir, args.threads)
    model = LlamaModel(path, ModelLoadOptions(gpu_layers=args.gpu_layers))
    tuning = ContextTuning(
        n_ubatch=args.n_ubatch,
        n_threads_batch=args.threads_batch,
        type_k=args.type_k,
        type_v=args.type_v,
        kv_unified=args.kv_unified,
    )
    flash = not args.no_flash_attn
    setup = Setup(model, args.threads, args.max_tokens, flash, tuning, args.n_batch)
    prompt_text = render_prompt(
        PromptStyle("chat", model.chat_template), QUESTION, system=COT_SYSTEM
    )
    prompt = model.tokenize(prompt_text)
    lib = model.lib
    high_level: dict[str, Any] = {
        k: v
        for k, v in {
            "n_batch": args.n_batch,
            "n_ubatch": args.n_ubatch,
            "type_k": ggml_type(lib, args.type_k) if args.type_k else None,
            "type_v": ggml_type(lib, args.type_v) if args.type_v else None,
        }.items()
        if v is not None
    }
    llm = Llama(
        str(path),
        n_ctx=4096,
        n_threads=args.threads,
        n_threads_batch=args.threads_batch or args.threads,
        n_gpu_layers=model.gpu_layers,
        flash_attn=flash and not args.baseline_no_flash_attn,
        verbose=False,
        **high_level,
    )
    ns = [int(x) for x in args.sizes.split(",")]
    levers = {k: v for k, v in dataclasses.asdict(tuning).items() if v not in (None, False)}
    print(
        f"model {path.name}, gpu layers {offload_for(model).gpu_layers}, {args.threads} threads, "
        f"flash attn {'on' if flash else 'off'}, {args.max_tokens} tokens/branch, "
        f"prompt {len(prompt)} tokens, {args.reps} interleaved reps, medians"
        + (f"; levers {levers}" if levers else "")
        + (f", n_batch {args.n_batch}" if args.n_batch else ""),
        flush=True,
    )

    custom = args.model is not None or args.quant is not None  # else: the catalog default
    cli = None if args.skip_cli else cli_commands(args, path, custom, model.gpu_layers, flash)
    # Warm-up, untimed: first calls pay for page faults and weight repacking.
    engine_run(dataclasses.replace(setup, max_tokens=4), prompt, 1)
    baseline_run(llm, prompt_text, 1, 4)
    rates: dict[tuple[str, int], list[float]] = {}
    pp: list[float] = []
    walls: dict[str, list[float]] = {"ask": [], "loop": [], "help": []}
    for rep in range(args.reps):
        for n in ns:
            for name in ("engine", "baseline") if rep % 2 == 0 else ("baseline", "engine"):
                if name == "engine":
                    tok, dt, decode_dt = engine_run(setup, prompt, n)
                    rates.setdefault(("decode", n), []).append(tok / decode_dt)
                else:
                    tok, dt = baseline_run(llm, prompt_text, n, args.max_tokens)
                rates.setdefault((name, n), []).append(tok / dt)
        pp.append(prompt_speed(setup, args.pp_tokens))
        if cli is not None:
            order = ["ask", "loop"] if rep % 2 == 0 else ["loop", "ask"]
            for key in [*order, "help"]:
                walls[key].append(timed(cli[key]))
        print(f"  rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    llm.close()

    pp_rate = statistics.median(pp)
    print(
        f"\n{'N':>3} {'engine tok/s':>13} {'sequential tok/s':>17} {'ratio':>6} {'of PP':>6}"
        f" {'decode-only tok/s':>18}"
    )
    for n in ns:
        e = statistics.median(rates[("engine", n)])
        b = statistics.median(rates[("baseline", n)])
        d = statistics.median(rates[("decode", n)])
        print(f"{n:>3} {e:>13.1f} {b:>17.1f} {e / b:>5.2f}x {e / pp_rate:>6.0%} {d:>18.1f}")
    print(f"prompt processing (PP, {args.pp_tokens} tokens): {pp_rate:.1f} tok/s")
    if cli is not None:
        a, lp = statistics.median(walls["ask"]), statistics.median(walls["loop"])
        print(
            f"reason ask --branches 8: {a:.2f}s; loop of 8 create_chat_completion: {lp:.2f}s; "
            f"ratio {lp / a:.2f}x (whole processes, model load included)"
        )
        print(f"reason --help: {statistics.median(walls['help']) * 1000:.0f} ms")


def cli_commands(
    args: argparse.Namespace, path: Path, custom: bool, gpu_layers: int, flash: bool
) -> dict[str, list[str]]:
    """`reason ask --branches 8`, the equivalent plain loop, and `reason --help`."""
    ask = [sys.executable, "-m", "reasoncli", "ask", QUESTION, "--branches", "8"]
    ask += ["--max-tokens", str(args.max_tokens), "--quiet", "--no-log"]
    ask += ["--threads", str(args.threads), "--gpu-layers", str(gpu_layers)]
    ask += ["-m", str(path)] if custom else []
    ask += [] if flash else ["--no-flash-attn"]
    loop = [sys.executable, "-c", CHAT_LOOP, str(path), str(args.threads), str(args.max_tokens)]
    loop += [COT_SYSTEM, QUESTION, "1" if flash else "0", str(gpu_layers)]
    return {
        "ask": ask,
        "loop": loop,
        "help": [str(Path(sys.executable).with_name("reason")), "--help"],
    }


if __name__ == "__main__":
    main()
