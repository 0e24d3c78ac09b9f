"""The remote backend against llama_cpp.server, on the embedded model (SmolLM2-135M).

Starts `python -m llama_cpp.server` on 127.0.0.1 (alias smollm2-135m, n_ctx 4096, --threads),
warms it with one throwaway request, then prints medians of interleaved runs:
  1. wall time of `reason ask --branches 8` as a subprocess, through the server vs the
     in-process engine, and their ratio (both include process start; the local side also loads
     the model, the remote side only checks the server);
  2. the remote vote in this process (one session per concurrency, opened once and reused):
     generated tokens / generate seconds and wall seconds at --max-concurrency 1, 4, 8, with
     the ratio against concurrency 1.

llama_cpp.server runs one request at a time (a global lock around its single model), so the
server is expected to be slower than the batched in-process engine, and more concurrency can
only overlap HTTP and Python overhead, not decoding.

    python benchmarks/remote.py [--reps 3] [--max-tokens 128] [--threads 2]
    python benchmarks/remote.py --reps 1 --max-tokens 16 --threads 1   # smoke

On cores shared with other jobs pass `--threads 1` (llama.cpp's two-thread barrier spins
there), or run the whole thing under `nice` so it does not slow the other job down; either way
the numbers are then only good for ratios within this run. The server is stopped at the end,
also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx2

from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model
from reasoncli.remote.session import RemoteRequest, RemoteSession, open_remote_session
from reasoncli.strategies.base import StrategyOptions, get_strategy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from remote_support import LlamaServer, free_port  # noqa: E402

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)
ALIAS = "smollm2-135m"
BRANCHES = 8


def ask_cmd(args: argparse.Namespace, base_url: str | None) -> list[str]:
    """`reason ask --branches 8 --json`, through `base_url` or on the in-process engine."""
    cmd = [sys.executable, "-m", "reasoncli", "ask", QUESTION, "--branches", str(BRANCHES)]
    cmd += ["--max-tokens", str(args.max_tokens), "--seed", str(args.seed), "--json"]
    if base_url is not None:
        return cmd + ["--base-url", base_url, "-m", ALIAS]
    return cmd + ["--threads", str(args.threads)]


def timed_ask(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one CLI run and its JSON result; a failed run stops the benchmark."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, text=True, capture_output=True, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:4])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return dt, json.loads(proc.stdout)


def vote_run(
    session: RemoteSession, args: argparse.Namespace, seed: int
) -> tuple[int, float, float, int]:
    """(generated tokens, generate seconds, wall seconds, failed branches) of one remote vote."""
    options = StrategyOptions(branches=BRANCHES, max_tokens=args.max_tokens, seed=seed)
    t0 = time.perf_counter()
    result = get_strategy("vote").run(QUESTION, session, options, lambda e: None)
    wall = time.perf_counter() - t0
    failed = sum(1 for b in result.branches if b.finish_reason == "failed")
    return result.generated_tokens, result.timings.generate_s, wall, failed


def warm_up(base_url: str, max_tokens: int) -> None:
    """One throwaway request: the first one pays for lazy allocations on the server."""
    session = open_remote_session(
        RemoteRequest(base_url=base_url, model=ALIAS, max_concurrency=1), load_catalog()
    )
    try:
        options = StrategyOptions(branches=1, max_tokens=max_tokens, seed=12345)
        get_strategy("vote").run(QUESTION, session, options, lambda e: None)
    finally:
        session.close()


def cli_section(args: argparse.Namespace, base_url: str) -> tuple[float, float]:
    """Median wall seconds of `reason ask` through the server and in-process, interleaved."""
    sides = {"remote": ask_cmd(args, base_url), "local": ask_cmd(args, None)}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    tokens: dict[str, list[int]] = {name: [] for name in sides}
    for rep in range(args.reps):
        order = list(sides) if rep % 2 == 0 else list(sides)[::-1]
        for name in order:
            dt, result = timed_ask(sides[name])
            walls[name].append(dt)
            tokens[name].append(int(result.get("generated_tokens", 0)))
            print(f"  rep {rep + 1} {name:>6}: {dt:6.2f}s, {tokens[name][-1]} tokens", flush=True)
    return statistics.median(walls["remote"]), statistics.median(walls["local"])


def concurrency_section(
    args: argparse.Namespace, base_url: str, levels: list[int]
) -> dict[int, tuple[float, float, float, int]]:
    """Per concurrency: median tok/s, median wall s, median tokens, total failed branches."""
    catalog = load_catalog()
    sessions: dict[int, RemoteSession] = {}
    runs: dict[int, list[tuple[int, float, float, int]]] = {k: [] for k in levels}
    try:
        for k in levels:
            request = RemoteRequest(base_url=base_url, model=ALIAS, max_concurrency=k)
            sessions[k] = open_remote_session(request, catalog)
        for rep in range(args.reps):
            for k in levels if rep % 2 == 0 else levels[::-1]:
                # Same seeds for every level within a rep: the same work, in different overlap.
                run = vote_run(sessions[k], args, args.seed + 1000 * rep)
                runs[k].append(run)
                tok, gen_s, wall, failed = run
                print(
                    f"  rep {rep + 1} concurrency {k}: {tok} tokens, {gen_s:.2f}s generating, "
                    f"{wall:.2f}s wall" + (f", {failed} failed branches" if failed else ""),
                    flush=True,
                )
    finally:
        for session in sessions.values():
            session.close()
    out = {}
    for k, rs in runs.items():
        rate = statistics.median(t / g if g > 0 else 0.0 for t, g, _, _ in rs)
        wall = statistics.median(w for _, _, w, _ in rs)
        toks = statistics.median(t for t, _, _, _ in rs)
        out[k] = (rate, wall, toks, sum(f for _, _, _, f in rs))
    return out


class SlotServer:
    """llama.cpp's own llama-server with parallel slots, on loopback, for the duration."""

    def __init__(self, binary: Path, model: Path, threads: int) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.cmd = [
            str(binary), "-m", str(model), "--alias", ALIAS, "-np", str(BRANCHES),
            "-c", str(4096 * BRANCHES), "-t", str(threads), "--host", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> SlotServer:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited with {self.proc.returncode}")
            try:
                if httpx2.get(self.base_url + "/models", timeout=2).status_code == 200:
                    return self
            except httpx2.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("llama-server did not come up in 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the server's context manager, which stops it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="server's and local engine's threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", default="1,4,8", help="--max-concurrency levels (first: 1x)")
    ap.add_argument("--skip-cli", action="store_true", help="skip part 1 (reason ask wall time)")
    ap.add_argument("--skip-concurrency", action="store_true", help="skip part 2 (throughput)")
    ap.add_argument(
        "--llama-server",
        metavar="PATH",
        help="benchmark this llama.cpp llama-server binary (-np 8 parallel slots) instead of "
        "llama-cpp-python's llama_cpp.server",
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    signal.signal(signal.SIGTERM, _terminate)

    path = Path(resolve_model(None, load_catalog()).path)
    print(
        f"model {path.name} via llama_cpp.server (alias {ALIAS}, n_ctx 4096), "
        f"{args.threads} threads, {args.max_tokens} tokens/branch, {BRANCHES} branches, "
        f"{args.reps} interleaved reps, medians",
        flush=True,
    )
    cli: tuple[float, float] | None = None
    conc: dict[int, tuple[float, float, float, int]] = {}
    t_start = time.perf_counter()
    try:
        server: Any = (
            SlotServer(Path(args.llama_server), path, args.threads)
            if args.llama_server
            else LlamaServer(
                path, alias=ALIAS, n_ctx=4096, n_threads=args.threads, startup_timeout=180.0
            )
        )
        with server:
            print(f"server up at {server.base_url} (pid {server.pid}); warming up", flush=True)
            warm_up(server.base_url, args.max_tokens)
            if not args.skip_cli:
                print("\n1. reason ask --branches 8 (subprocess wall time)", flush=True)
                cli = cli_section(args, server.base_url)
            if not args.skip_concurrency:
                print("\n2. remote vote in-process, by --max-concurrency", flush=True)
                conc = concurrency_section(args, server.base_url, levels)
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        raise SystemExit(130) from None

    if args.llama_server:
        print("\nnote: llama-server runs -np 8 slots and batches them in one decode, like the")
        print("in-process engine, so concurrency should raise throughput.")
    else:
        print("\nnote: llama_cpp.server serves one request at a time (global lock), so it is")
        print("expected to be slower than the batched in-process engine; concurrency can only")
        print("overlap HTTP/Python overhead with decoding, not decode branches together.")
    if cli is not None:
        remote, local = cli
        print(f"\n{'reason ask --branches 8':<26} {'wall s':>8} {'vs local':>9}")
        print(f"{'in-process engine':<26} {local:>8.2f} {1.0:>8.2f}x")
        label = "llama-server -np 8" if args.llama_server else "llama_cpp.server"
        print(f"{label:<26} {remote:>8.2f} {remote / local:>8.2f}x")
    if conc:
        base_rate, base_wall = conc[levels[0]][0], conc[levels[0]][1]
        print(
            f"\n{'concurrency':>11} {'tokens':>7} {'tok/s':>7} {'ratio':>6} {'wall s':>7} "
            f"{'ratio':>6} {'failed':>6}"
        )
        for k in levels:
            rate, wall, toks, failed = conc[k]
            r_rate = rate / base_rate if base_rate > 0 else float("nan")
            print(
                f"{k:>11} {toks:>7.0f} {rate:>7.1f} {r_rate:>5.2f}x {wall:>7.2f} "
                f"{wall / base_wall:>5.2f}x {failed:>6}"
            )
        print(f"(ratios against concurrency {levels[0]}; wall ratio < 1 is faster)")
    print(
        f"\nsettings: threads {args.threads}, max tokens {args.max_tokens}, reps {args.reps}, "
        f"seed {args.seed}, total {time.perf_counter() - t_start:.0f}s"
    )


if __name__ == "__main__":
    main()
