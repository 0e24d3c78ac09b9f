"""Load and soak for `reason serve` on loopback: many clients, mixed requests, then SIGTERM.

Starts `reason serve` on 127.0.0.1 (port 0, never another address) with a private history,
then N client threads send a fixed, seeded mix: chat and completions, streamed and not,
`vote`/`think`/`best-of-n`, a share of streams dropped after the first chunk and a share of
malformed bodies (broken JSON, wrong types, out of range). It prints throughput (requests/s,
generated tok/s), p50/p95/p99 latency and time to first byte, counts by status (each 429/503
must carry Retry-After; a 500 is a failure), the server's RSS (HTTP process and engine process)
before and after, and checks that every answered request is in the history with its branches
and that `PRAGMA integrity_check` is ok. Last, it sends SIGTERM with requests in flight and
checks they end (answered with what they had, or 503) within a deadline and the history is
intact.

    python benchmarks/serve_load.py [--requests 1000] [--clients 32] [--model PATH|NAME]
        [--max-tokens 16] [--threads 2] [--time-limit 900] [--peer llama-server]

With `--peer llama-server` the same plans then go, in the same run, to llama.cpp's own
llama-server (benchmarks/llama_server.sh builds it from the vendored llama.cpp) on the same
model and threads: `--max-branches` slots (`-np`), continuous batching, `--ctx` tokens a slot.
A vote-4 request asks it for `n` 4 (one prefill, llama.cpp PR #17775), best-of-n-2 for `n` 2,
think for one completion of max_tokens + answer_tokens; it does not vote. Generated tokens
are summed over all choices (llama-server's `usage` covers choice 0 only when not streamed:
the others count as their length, or their tokens + EOS), cross-checked with its /metrics.
Last, aggregate generated tok/s and latency side by side, and reason serve's ratio to it.

Bounded: --requests in all, --time-limit seconds at most per server (requests not sent by
then are skipped and reported).

The fair comparison (#30 item 5), instead of the load and soak:

    python benchmarks/serve_load.py --peer llama-server --rounds 4 --requests 40 --clients 8 \
        --strategies vote-4 --threads 1 [--peer-cache-prompt] [--peer-decode-time]

Both servers run at once and take turns: each round's plans (well-formed, not streamed, not
dropped) go to one, then to the other, the order flipping every round. Both decode the same
prompt: reason serve's own (the model's chat template with reason's system prompt, rendered
here as reason renders it), sent to llama-server's /v1/completions as `prompt`, with the
model's sampling settings from models.yaml and, unless --peer-cache-prompt, `cache_prompt`
off. reason serve keeps its prompt cache (engine/prefix_cache.py) unless --no-prompt-cache.
Per phase: prompt (decoded, not sent: /health's prompt_tokens_prefilled for reason serve,
/metrics for llama-server), generated and processed (prompt + generated) tok/s and p50/p95
latency, and for reason serve where its engine's time went (/health: decode rounds, those that
fed a new prompt beside branches or left a busy run out, seconds inside rounds); with
--peer-decode-time, llama-server's seconds inside `llama_process` too, timed by an LD_PRELOAD
shim (benchmarks/decode_timer.c, compiled with `cc`); then medians over rounds side by side,
the ratio, and the per-round ratios' geometric mean with its 95% interval.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx2 as httpx
import reason_server

QUESTIONS = [
    "A farmer has 17 cows and buys 23 more. How many cows does he have?",
    "Tom reads 12 pages a day for 9 days. How many pages does he read?",
    "A box holds 48 apples. 15 are eaten. How many are left?",
    "What is 7 times 8 plus 6?",
    "Is 91 a prime number?",
]
ANSWER_TOKENS = 8  # think's answer after its thinking
MALFORMED: list[bytes | dict[str, Any]] = [
    b'{"model": "vote-2-M", "messages": [',
    {"model": "vote-2-M", "messages": "not a list"},
    {"model": "vote-2-M", "messages": [{"role": "user", "content": "q"}], "max_tokens": -5},
    {"model": "vote-2-M", "messages": [{"role": "user", "content": "q"}], "n": "two"},
    {"model": "M", "prompt": "q", "reason": {"min_tokens": None}},
    {"model": "M", "prompt": "q", "temperature": "hot"},
]


@dataclass
class Outcome:
    kind: str  # ok | dropped | malformed
    status: int
    latency: float
    ttfb: float
    tokens: int = 0
    prompt_tokens: int = 0  # usage.prompt_tokens of a non-streamed 200
    retry_after: bool = True
    marker: str = ""
    error: str = ""
    uncounted: list[str] = field(default_factory=list)  # peer: choice texts that ended on EOS
    resent: bool = False  # the server dropped the connection unanswered the first time


@dataclass
class Plan:
    index: int
    marker: str
    chat: bool
    strategy: str
    stream: bool
    drop: bool
    malformed: bytes | dict[str, Any] | None
    body: dict[str, Any] = field(default_factory=dict)


def make_plans(n: int, model: str, max_tokens: int, seed: int) -> list[Plan]:
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        marker = f"[load {i}]"
        chat = rng.random() < 0.5
        strategy = rng.choice(["vote-4", "think", "best-of-n-2"])
        stream = rng.random() < 0.3
        roll = rng.random()
        drop = stream and roll < 0.10 / 0.3  # 10% of all requests: streams dropped mid-way
        bad = None
        if rng.random() < 0.05:
            bad = rng.choice(MALFORMED)
            if isinstance(bad, dict):
                bad = json.loads(
                    json.dumps(bad).replace('"M"', f'"{model}"').replace("-M", f"-{model}")
                )
            else:
                bad = bad.replace(b"-M", f"-{model}".encode())
        question = f"{marker} {rng.choice(QUESTIONS)}"
        body: dict[str, Any] = {
            "model": f"{strategy}-{model}",
            "max_tokens": max_tokens,
            "seed": i,
            "stream": stream,
        }
        if strategy == "think":
            body["reason"] = {"answer_tokens": ANSWER_TOKENS}
        if chat:
            body["messages"] = [{"role": "user", "content": question}]
        else:
            body["prompt"] = question
        plans.append(Plan(i, marker, chat, strategy, stream, drop or False, bad, body))
    return plans


def start_server(args: argparse.Namespace, logs: Path) -> tuple[subprocess.Popen[str], str]:
    serve_args = [
        "--max-branches", str(args.max_branches), "--max-requests", str(args.max_requests),
        "--queue", str(args.queue if args.queue is not None else args.clients),
        "--threads", str(args.threads), "--ctx", str(args.ctx),
    ]  # fmt: skip
    if args.no_prompt_cache:
        serve_args.append("--no-prompt-cache")
    if args.model:
        serve_args += ["--model", args.model]
    env = {**os.environ, "REASON_LOGS_PATH": str(logs)}
    env.pop("REASON_NO_LOG", None)
    return reason_server.spawn(serve_args, env)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def send(client: httpx.Client, url: str, plan: Plan) -> Outcome:
    path = "/v1/chat/completions" if plan.chat else "/v1/completions"
    t0 = time.perf_counter()
    if plan.malformed is not None:
        bad = plan.malformed
        kw: dict[str, Any] = {"content": bad} if isinstance(bad, bytes) else {"json": bad}
        r = client.post(url + path, headers={"content-type": "application/json"}, **kw)
        dt = time.perf_counter() - t0
        return Outcome("malformed", r.status_code, dt, dt, marker=plan.marker)
    if not plan.stream:
        r = client.post(url + path, json=plan.body)
        dt = time.perf_counter() - t0
        tokens, uncounted = choice_tokens(r.json(), plan.body) if r.status_code == 200 else (0, [])
        prompt = (
            (r.json().get("usage") or {}).get("prompt_tokens", 0) if r.status_code == 200 else 0
        )
        return Outcome(
            "ok", r.status_code, dt, dt, tokens, int(prompt),
            retry_after=r.status_code not in (429, 503) or "retry-after" in r.headers,
            marker=plan.marker, error="" if r.status_code < 400 else r.text[:200],
            uncounted=uncounted,
        )  # fmt: skip
    with client.stream("POST", url + path, json=plan.body) as r:
        ttfb = time.perf_counter() - t0
        if r.status_code != 200:
            r.read()
            dt = time.perf_counter() - t0
            return Outcome(
                "ok", r.status_code, dt, ttfb,
                retry_after=r.status_code not in (429, 503) or "retry-after" in r.headers,
                marker=plan.marker, error=r.text[:200],
            )  # fmt: skip
        tokens = 0
        for line in r.iter_lines():
            if plan.drop and line.startswith(":"):
                break  # the client goes away mid-stream
            if line.startswith("data: {") and '"usage"' in line:
                usage = json.loads(line[6:]).get("usage") or {}
                tokens += usage.get("completion_tokens", 0)  # llama-server: one per choice
        dt = time.perf_counter() - t0
        return Outcome("dropped" if plan.drop else "ok", 200, dt, ttfb, tokens, marker=plan.marker)


def choice_tokens(body: dict[str, Any], request: dict[str, Any]) -> tuple[int, list[str]]:
    """Generated tokens of a whole answer, and texts still to count. `usage` covers every branch
    of reason serve's answer, but only choice 0 of llama-server's answer to `n` > 1 (its merged
    answer keeps the first result's usage): a further choice that ended on length counts
    max_tokens, one that ended on EOS is returned to be tokenized (+1 for the EOS) later."""
    tokens = int((body.get("usage") or {}).get("completion_tokens", 0))
    uncounted = []
    for choice in (body.get("choices") or [])[1:] if request.get("n", 1) > 1 else []:
        if choice.get("finish_reason") == "length":
            tokens += int(request["max_tokens"])
        else:
            message = choice.get("message") or {}
            text = choice.get("text") or message.get("content") or ""
            uncounted.append((message.get("reasoning_content") or "") + text)
    return tokens, uncounted


def run_load(url: str, plans: list[Plan], clients: int, deadline: float) -> list[Outcome]:
    todo = list(reversed(plans))
    lock = threading.Lock()
    outcomes: list[Outcome] = []

    def client_loop() -> None:
        with httpx.Client(timeout=600) as client:
            while time.monotonic() < deadline:
                with lock:
                    if not todo:
                        return
                    plan = todo.pop()
                if plan.stream and not plan.drop:
                    plan.body["stream_options"] = {"include_usage": True}
                try:
                    try:
                        out = send(client, url, plan)
                    except httpx.RemoteProtocolError as exc:
                        if "without sending a response" not in str(exc):
                            raise
                        # the server closed the connection before answering (2 of 40 requests
                        # in a llama-server smoke run): once more, on a new connection, counted
                        out = send(client, url, plan)
                        out.resent = True
                except httpx.HTTPError as exc:
                    out = Outcome("ok", -1, 0.0, 0.0, marker=plan.marker, error=repr(exc))
                with lock:
                    outcomes.append(out)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def check_history(logs: Path, answered: list[str]) -> tuple[str, int, int]:
    """(integrity_check, answered requests found with branches, runs in the history)."""
    db = sqlite3.connect(f"file:{logs}?mode=ro", uri=True)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        found = 0
        for marker in answered:
            row = db.execute(
                "SELECT count(b.run_id) FROM runs r JOIN branches b ON b.run_id = r.id "
                "WHERE instr(r.question, ?) > 0",
                (marker + " ",),
            ).fetchone()
            found += row[0] > 0
    finally:
        db.close()
    return integrity, found, runs


def sigterm_phase(
    proc: subprocess.Popen[str], url: str, plans: list[Plan], deadline_s: float
) -> tuple[Counter[int], float, int]:
    """SIGTERM with requests in flight: their statuses, the exit time and the exit code."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def one(plan: Plan) -> None:
        try:
            with httpx.Client(timeout=deadline_s + 30) as client:
                plan.body["stream"] = False
                out = send(client, url, plan)
            code = out.status
            if code >= 500 and code != 503:
                print(f"  SIGTERM phase: {code} {out.error}", file=sys.stderr)
        except httpx.HTTPError:
            code = -1  # connection refused or reset: the server had stopped accepting
        with lock:
            statuses[code] += 1

    threads = [threading.Thread(target=one, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    time.sleep(3.0)  # let them reach the engine
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(deadline_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    took = time.monotonic() - t0
    for t in threads:
        t.join(30)
    return statuses, took, rc


def summary(outcomes: list[Outcome], wall: float) -> dict[str, float]:
    ok = [o for o in outcomes if o.kind == "ok" and o.status == 200]
    lat = [o.latency for o in ok]
    ttfb = [o.ttfb for o in ok]
    return {
        "requests/s": len(outcomes) / wall,
        "generated tok/s": sum(o.tokens for o in ok) / wall,
        "p50 latency s": pct(lat, 0.5),
        "p95 latency s": pct(lat, 0.95),
        "p99 latency s": pct(lat, 0.99),
        "p95 first byte s": pct(ttfb, 0.95),
    }


def llama_server_binary(given: str | None) -> Path:
    """--llama-server, else $REASON_LLAMA_SERVER, else benchmarks/llama_server.sh's build."""
    default = Path.home() / ".cache/reasoncli-bench/llama.cpp/build/bin/llama-server"
    path = Path(given or os.environ.get("REASON_LLAMA_SERVER") or default).expanduser()
    if not os.access(path, os.X_OK):
        raise SystemExit(
            f"no llama-server at {path}: build it with `low bash benchmarks/llama_server.sh` "
            "or name one with --llama-server / REASON_LLAMA_SERVER"
        )
    return path


def start_llama_server(
    args: argparse.Namespace,
    binary: Path,
    model_path: str,
    alias: str,
    log: Path,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """llama-server on 127.0.0.1 (port 0): --max-branches slots of --ctx tokens each, continuous
    batching, flash attention on as in `reason serve`, the same threads."""
    slots = args.max_branches
    threads = str(args.threads)
    cmd = [
        str(binary), "-m", model_path, "--host", "127.0.0.1", "--port", "0", "--alias", alias,
        "-np", str(slots), "-c", str(slots * args.ctx), "-cb", "-fa", "on",
        "-t", threads, "-tb", threads, "--metrics", "--no-webui",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    deadline = time.monotonic() + 600  # a loaded machine takes minutes to load and warm up
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if m:
            url = m.group(1)
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise SystemExit(f"llama-server did not start:\n{tail}")


PEER_N = {"vote-4": 4, "best-of-n-2": 2, "think": 1}


def peer_plans(plans: list[Plan], alias: str) -> list[Plan]:
    """The same requests as llama-server can take them: `n` for the branches, no `reason`."""
    out = []
    for plan in plans:
        body = {k: v for k, v in plan.body.items() if k != "reason"}
        body["model"] = alias
        if PEER_N[plan.strategy] > 1:
            body["n"] = PEER_N[plan.strategy]
        if plan.strategy == "think":
            body["max_tokens"] += ANSWER_TOKENS  # the same budget: thinking, then the answer
        out.append(replace(plan, body=body))
    return out


def count_uncounted(url: str, outcomes: list[Outcome]) -> None:
    """Tokens of the choices `choice_tokens` left: their text's tokens, plus the EOS."""
    with httpx.Client(timeout=60) as client:
        for o in outcomes:
            for text in o.uncounted:
                r = client.post(f"{url}/tokenize", json={"content": text})
                o.tokens += len(r.json()["tokens"]) + 1
            o.uncounted = []


def predicted_total(url: str) -> int:
    """llama-server's own count of generated tokens (/metrics, Prometheus text)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(r"^llamacpp:tokens_predicted_total (\S+)", text, re.M)
    return int(float(m.group(1))) if m else -1


def run_peer(args: argparse.Namespace, alias: str) -> tuple[dict[str, float], bool]:
    """The load phase again against llama-server; (its summary, whether it went wrong)."""
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.resolve import resolve_model

    binary = llama_server_binary(args.llama_server)
    model_path = str(resolve_model(args.model, load_catalog()).path)
    log = Path(tempfile.mkdtemp(prefix="serve-load-peer-")) / "llama-server.log"
    proc, url = start_llama_server(args, binary, model_path, alias, log)
    try:
        warm = peer_plans(make_plans(args.warmup, alias, args.max_tokens, args.seed + 1), alias)
        run_load(url, warm, args.clients, time.monotonic() + 300)
        plans = peer_plans(make_plans(args.requests, alias, args.max_tokens, args.seed), alias)
        before = predicted_total(url)
        rss0 = rss_mb(proc.pid)
        t0 = time.monotonic()
        outcomes = run_load(url, plans, args.clients, t0 + args.time_limit)
        wall = time.monotonic() - t0
        server_tokens = predicted_total(url) - before
        rss1 = rss_mb(proc.pid)
        count_uncounted(url, outcomes)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stats = summary(outcomes, wall)
    statuses = Counter(o.status for o in outcomes)
    ok = [o for o in outcomes if o.kind == "ok" and o.status == 200]
    well_formed_failed = [o for o in outcomes if o.kind != "malformed" and o.status != 200]
    print(f"llama-server ({binary}), -np {args.max_branches}, continuous batching: "
          f"{len(outcomes)} of {len(plans)} requests sent in {wall:.1f} s")  # fmt: skip
    print(f"  throughput: {stats['requests/s']:.2f} requests/s, "
          f"{stats['generated tok/s']:.1f} generated tok/s (answered, non-dropped requests, "
          f"all choices); its /metrics: {server_tokens / wall:.1f} tok/s (all)")  # fmt: skip
    print(f"  latency of 200s: p50 {stats['p50 latency s']:.2f} s, p95 "
          f"{stats['p95 latency s']:.2f} s, p99 {stats['p99 latency s']:.2f} s; time to first "
          f"byte p95 {stats['p95 first byte s']:.2f} s")  # fmt: skip
    kinds = Counter(o.kind for o in outcomes)
    print(f"  statuses: {dict(sorted(statuses.items()))}; kinds: {dict(kinds)}; "
          f"well-formed requests not answered 200: {len(well_formed_failed)}")  # fmt: skip
    resent = sum(o.resent for o in outcomes)
    print(f"  RSS MB: before {rss0:.0f}, after {rss1:.0f}; answered {len(ok)}; sent again "
          f"after a connection closed unanswered: {resent}")  # fmt: skip
    errors = Counter(o.error[:120] for o in well_formed_failed if o.error)
    for text, n in errors.most_common(3):
        print(f"  error x{n}: {text}")
    return stats, bool(well_formed_failed)


def side_by_side(ours: dict[str, float], peer: dict[str, float]) -> None:
    print("side by side, same plans, model, threads and machine, one server after the other:")
    print(f"  {'':<18} {'reason serve':>13} {'llama-server':>13} {'ratio':>7}")
    for key in ("generated tok/s", "requests/s", "p50 latency s", "p95 latency s"):
        ratio = ours[key] / peer[key] if peer[key] else float("nan")
        print(f"  {key:<18} {ours[key]:>13.2f} {peer[key]:>13.2f} {ratio:>6.2f}x")
    goal = ours["generated tok/s"] / peer["generated tok/s"] if peer["generated tok/s"] else 0
    print(f"  throughput goal (#30: reason serve >= 1.0x llama-server while voting): "
          f"{'met' if goal >= 1.0 else 'not met'} ({goal:.2f}x)")  # fmt: skip


# -- --rounds: the same work for both servers, alternated -------------------------------------


@dataclass
class Phase:
    """One server's pass over one round's plans."""

    server: str
    round: int
    wall: float
    prompt_tokens: int  # decoded (reason: usage; llama-server: /metrics, after its prefix cache)
    generated: int
    latencies: list[float]
    answered: int
    failed: int

    def row(self) -> dict[str, float]:
        return {
            "prompt tok/s": self.prompt_tokens / self.wall,
            "generated tok/s": self.generated / self.wall,
            "processed tok/s": (self.prompt_tokens + self.generated) / self.wall,
            "requests/s": self.answered / self.wall,
            "p50 latency s": pct(self.latencies, 0.5),
            "p95 latency s": pct(self.latencies, 0.95),
        }


def fair_plans(n: int, model: str, max_tokens: int, seed: int, strategies: list[str]) -> list[Plan]:
    """make_plans' seeded questions and chat/completions mix, all well-formed and answered in
    full (no malformed bodies, no dropped streams, not streamed), strategies from the list."""
    rng = random.Random(seed)
    out = []
    for plan in make_plans(n, model, max_tokens, seed):
        strategy = rng.choice(strategies)
        body = {k: v for k, v in plan.body.items() if k != "reason"}
        body["model"] = f"{strategy}-{model}"
        body["stream"] = False
        if strategy == "think":
            body["reason"] = {"answer_tokens": ANSWER_TOKENS}
        out.append(replace(plan, strategy=strategy, stream=False, drop=False, malformed=None,
                           body=body))  # fmt: skip
    return out


def question_of(plan: Plan) -> str:
    return plan.body["messages"][-1]["content"] if plan.chat else plan.body["prompt"]


def rendered_peer_plans(
    plans: list[Plan], alias: str, render: Any, sampling: dict[str, Any], cache_prompt: bool
) -> list[Plan]:
    """The plans as llama-server takes them, on /v1/completions with reason serve's own prompt
    text (the model's chat template, reason's system prompt, the assistant turn opened), the
    model's sampling settings from models.yaml, and `n` for the branches."""
    out = []
    for plan in peer_plans(plans, alias):
        body = {k: v for k, v in plan.body.items() if k != "messages"}
        body["prompt"] = render(question_of(plan))
        body["cache_prompt"] = cache_prompt
        body.update(sampling)
        out.append(replace(plan, chat=False, body=body))
    return out


def decode_timer(workdir: Path) -> tuple[dict[str, str], Path]:
    """The environment that runs llama-server under benchmarks/decode_timer.c (compiled here),
    and the file where the shim keeps its running total of seconds inside llama_process."""
    shim, timer = workdir / "decode_timer.so", workdir / "llama-server-decode.txt"
    source = Path(__file__).with_name("decode_timer.c")
    build = subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(source), "-ldl"],
                           capture_output=True, text=True)  # fmt: skip
    if build.returncode != 0:
        raise SystemExit(f"--peer-decode-time: cannot build {source.name}: {build.stderr.strip()}")
    return {**os.environ, "LD_PRELOAD": str(shim), "DECODE_TIMER_FILE": str(timer)}, timer


def decode_totals(timer: Path) -> tuple[float, int, int, int]:
    """The shim's running totals: seconds inside llama_process, calls, rows decoded and graphs
    reused (all 0 before the first call)."""
    try:
        seconds, calls, rows, reused = timer.read_text().split()
    except (OSError, ValueError):
        return 0.0, 0, 0, 0
    return float(seconds), int(calls), int(rows), int(reused)


def metric(url: str, name: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    m = re.search(rf"^llamacpp:{name} (\S+)", text, re.M)
    return int(float(m.group(1))) if m else -1


def phase(
    server: str,
    rnd: int,
    url: str,
    plans: list[Plan],
    args: argparse.Namespace,
    timer: Path | None = None,
) -> Phase:
    """One round's plans against one server; `timer`: llama-server's decode_timer.c file."""
    peer = server == "llama-server"
    if peer:
        p0, g0 = metric(url, "prompt_tokens_total"), metric(url, "tokens_predicted_total")
        d0 = metric(url, "n_decode_total")
        timed0 = decode_totals(timer) if timer else (0.0, 0, 0, 0)
    else:
        p0 = prefilled(url)
        engine0 = engine_time(url)
    t0 = time.monotonic()
    outcomes = run_load(url, plans, args.clients, t0 + args.time_limit)
    wall = time.monotonic() - t0
    ok = [o for o in outcomes if o.status == 200]
    if peer:
        count_uncounted(url, outcomes)
        prompt = metric(url, "prompt_tokens_total") - p0
        server_generated = metric(url, "tokens_predicted_total") - g0
        decodes = metric(url, "n_decode_total") - d0
    else:
        after = prefilled(url)
        prompt = sum(o.prompt_tokens for o in ok) if after is None else after - (p0 or 0)
    generated = sum(o.tokens for o in ok)
    sent = sum(o.prompt_tokens for o in ok)
    ph = Phase(server, rnd, wall, prompt, generated, [o.latency for o in ok], len(ok),
               len(outcomes) - len(ok) + len(plans) - len(outcomes))  # fmt: skip
    r = ph.row()
    extra = f"; its /metrics: {server_generated} generated" if peer else ""
    print(f"  round {rnd} {server:<12} {wall:6.1f} s, {len(ok)}/{len(plans)} answered, prompt "
          f"{prompt} decoded of {sent} sent, {generated} generated{extra}; "
          f"{r['prompt tok/s']:.1f} prompt, {r['generated tok/s']:.1f} generated, "
          f"{r['processed tok/s']:.1f} processed tok/s; p50 {r['p50 latency s']:.2f} s, "
          f"p95 {r['p95 latency s']:.2f} s", flush=True)  # fmt: skip
    if peer:
        timed = ""
        if timer:
            seconds, calls, rows, reused = (
                b - a for a, b in zip(timed0, decode_totals(timer), strict=True)
            )
            timed = (f"; llama_process {seconds:.1f} s in {calls} calls for {rows} rows, "
                     f"{reused} graphs reused")  # fmt: skip
        per_call = (prompt + server_generated) / max(decodes, 1)
        print(f"    engine: {decodes} llama_decode calls, {per_call:.1f} tokens a call{timed}")
    else:
        rounds, busy, mixed, short, decode_s, rows = (
            b - a for a, b in zip(engine0, engine_time(url), strict=True)
        )
        print(f"    engine: {int(rounds)} decode rounds ({int(mixed)} feeding a new prompt beside "
              f"branches, {int(short)} leaving a busy run out), busy {busy:.1f} s of "
              f"{wall:.1f} s ({busy / wall:.0%}); llama_decode {decode_s:.1f} s for "
              f"{int(rows)} rows, {rows / max(rounds, 1):.1f} a round")  # fmt: skip
    for text, n in Counter(o.error[:120] for o in outcomes if o.error).most_common(3):
        print(f"    error x{n}: {text}")
    return ph


def engine_time(url: str) -> tuple[float, ...]:
    """reason serve's decode rounds, seconds inside them, mixed and short rounds, seconds in
    llama_decode and rows decoded so far (its /health): busy time well below the wall time
    means the engine waits rather than decodes; many short rounds mean runs miss rounds and the
    weights are read more often than needed; round time well above llama_decode's is Python."""
    health = httpx.get(f"{url}/health", timeout=10).json()
    keys = ("decode_rounds", "round_seconds", "mixed_rounds", "short_rounds", "decode_seconds",
            "decoded_rows")  # fmt: skip
    return tuple(float(health.get(k, 0)) for k in keys)


def prefilled(url: str) -> int | None:
    """reason serve's prompt tokens decoded so far (its /health; None without the counter)."""
    value = httpx.get(f"{url}/health", timeout=10).json().get("prompt_tokens_prefilled")
    return None if value is None else int(value)


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def paired_ratio(per_round: list[float]) -> tuple[float, float, float]:
    """The geometric mean of the per-round ratios and its 95% interval: each round pairs the two
    servers in the same minutes, so the machine's drift from one round to the next cancels."""
    import numpy as np

    from reasoncli.bench.metrics import bootstrap_mean

    mean, low, high = bootstrap_mean(np.log(np.asarray(per_round)))
    return math.exp(mean), math.exp(low), math.exp(high)


def fair_table(phases: list[Phase]) -> float:
    """Medians over rounds, side by side; returns the generated tok/s ratio."""
    ours = [p.row() for p in phases if p.server == "reason serve"]
    peer = [p.row() for p in phases if p.server == "llama-server"]
    print(f"medians over {len(ours)} rounds (each figure the median of the rounds' figures):")
    print(f"  {'':<16} {'reason serve':>13} {'llama-server':>13} {'ratio':>7}")
    ratios = {}
    for key in ours[0]:
        a, b = median([r[key] for r in ours]), median([r[key] for r in peer])
        ratios[key] = a / b if b else float("nan")
        note = "  (reason / llama-server: lower is better)" if "latency" in key else ""
        print(f"  {key:<16} {a:>13.2f} {b:>13.2f} {ratios[key]:>6.2f}x{note}")
    per_round = [
        a["generated tok/s"] / b["generated tok/s"] for a, b in zip(ours, peer, strict=True)
    ]
    print("  generated tok/s ratio per round: " + ", ".join(f"{x:.2f}x" for x in per_round))
    mean, low, high = paired_ratio(per_round)
    print(f"  paired over rounds: geometric mean {mean:.2f}x, 95% interval {low:.2f}x-{high:.2f}x "
          f"(bootstrap of the {len(per_round)} rounds' log ratios)")  # fmt: skip
    goal = ratios["generated tok/s"]
    print(f"  throughput goal (#30: reason serve >= 1.0x llama-server while voting): "
          f"{'met' if goal >= 1.0 else 'not met'} ({goal:.2f}x generated, "
          f"{ratios['processed tok/s']:.2f}x processed)")  # fmt: skip
    return goal


def run_fair(args: argparse.Namespace) -> int:
    """Both servers up at once, idle in turn: each round sends the same plans to one, then the
    other (the order flips every round: A B, B A, A B ...), so background load hits both."""
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.resolve import resolve_model
    from reasoncli.prompting import COT_SYSTEM, render_prompt
    from reasoncli.session import Session

    binary = llama_server_binary(args.llama_server)
    resolved = resolve_model(args.model, load_catalog())
    session = Session.load(resolved)  # only to render reason's prompts, as reason serve does
    try:
        style, bos, eos = session.style, session.model.bos_text, session.model.eos_text

        @functools.cache
        def render(question: str) -> str:
            return render_prompt(style, question, system=COT_SYSTEM, bos=bos, eos=eos)

        probe = session.prompt_text(QUESTIONS[0])
        if render(QUESTIONS[0]) != probe:
            raise SystemExit("the prompt rendered here is not the one reason serve renders")
        probe_tokens = len(session.prompt_tokens(probe))
    finally:
        session.close()
    s = resolved.spec.sampling
    sampling = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                "min_p": s.min_p, "repeat_penalty": s.repeat_penalty}  # fmt: skip
    if resolved.spec.stop:
        sampling["stop"] = list(resolved.spec.stop)
    strategies = args.strategies.split(",")
    logs = Path(tempfile.mkdtemp(prefix="serve-load-fair-")) / "history.sqlite3"
    ours, ours_url = start_server(args, logs)
    peer = None
    try:
        model = httpx.get(f"{ours_url}/health", timeout=10).json()["model"]
        env, timer = decode_timer(logs.parent) if args.peer_decode_time else (None, None)
        peer, peer_url = start_llama_server(args, binary, str(resolved.path), model,
                                            logs.parent / "llama-server.log", env)  # fmt: skip
        n_peer = len(httpx.post(f"{peer_url}/tokenize", json={"content": probe, "parse_special":
                                True}, timeout=10).json()["tokens"])  # fmt: skip
        print(f"fair comparison: {args.rounds} rounds x {args.requests} requests a server, "
              f"{args.clients} clients, strategies {strategies}, max_tokens {args.max_tokens}, "
              f"threads {args.threads} each, model {model} ({resolved.path})")  # fmt: skip
        print(f"  both get reason serve's prompt text (chat template + reason's system prompt); "
              f"llama-server on /v1/completions with that text as `prompt`, `n` for the "
              f"branches, sampling {sampling}, cache_prompt {args.peer_cache_prompt}")  # fmt: skip
        print(f"  reason serve's prompt cache: {'off' if args.no_prompt_cache else 'on'}")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"  load average at the start: {load} ({os.cpu_count()} CPUs)")
        print(f"  prompt of {QUESTIONS[0][:30]!r}...: {probe_tokens} tokens by reason's "
              f"tokenizer, {n_peer} by llama-server's /tokenize")  # fmt: skip
        servers = {
            "reason serve": (ours_url, lambda plans: plans),
            "llama-server": (peer_url, lambda plans: rendered_peer_plans(
                plans, model, render, sampling, args.peer_cache_prompt)),
        }  # fmt: skip
        warm = fair_plans(args.warmup, model, args.max_tokens, args.seed + 1, strategies)
        for name, (url, adapt) in servers.items():
            t0 = time.monotonic()
            run_load(url, adapt(warm), args.clients, t0 + 300)
            print(f"  warm-up {name}: {len(warm)} requests, {time.monotonic() - t0:.1f} s")
        phases = []
        for rnd in range(args.rounds):
            plans = fair_plans(args.requests, model, args.max_tokens, args.seed + 10 + rnd,
                               strategies)  # fmt: skip
            order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
            for name in order:
                url, adapt = servers[name]
                phases.append(phase(name, rnd, url, adapt(plans), args, timer))
        health = httpx.get(f"{ours_url}/health", timeout=10).json()
        print("  reason serve's prompt cache at the end: " + ", ".join(
            f"{k} {v}" for k, v in health.items() if k.startswith("prompt_")))  # fmt: skip
    finally:
        for proc in (ours, peer):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {load} ({os.cpu_count()} CPUs)")
    fair_table(phases)
    return int(any(p.failed for p in phases))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--model", default=None, help="default: the embedded model")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=512)
    parser.add_argument("--max-branches", type=int, default=16)
    parser.add_argument("--max-requests", type=int, default=8)
    parser.add_argument(
        "--queue", type=int, default=None, help="server --queue (default: --clients)"
    )
    parser.add_argument(
        "--warmup", type=int, default=100, help="requests before the RSS baseline is taken"
    )
    parser.add_argument("--time-limit", type=float, default=900.0)
    parser.add_argument("--sigterm-deadline", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer",
        choices=["llama-server"],
        default=None,
        help="then the same plans against this server, and the two side by side",
    )
    parser.add_argument(
        "--llama-server",
        default=None,
        help="its binary (default: $REASON_LLAMA_SERVER, else benchmarks/llama_server.sh's)",
    )
    parser.add_argument(
        "--peer-only", action="store_true", help="only the --peer phase (its own numbers)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="with --peer: the fair comparison instead of the load and soak: both servers get "
        "reason serve's prompt text, --requests each a round, alternated, medians over rounds",
    )
    parser.add_argument(
        "--strategies",
        default="vote-4,think,best-of-n-2",
        help="with --rounds: the strategies the plans draw from (comma-separated)",
    )
    parser.add_argument(
        "--peer-cache-prompt",
        action="store_true",
        help="with --rounds: let llama-server reuse a cached prompt prefix (off, it decodes "
        "every prompt in full)",
    )
    parser.add_argument(
        "--peer-decode-time",
        action="store_true",
        help="with --rounds: time llama-server's decodes (benchmarks/decode_timer.c, needs cc)",
    )
    parser.add_argument(
        "--no-prompt-cache",
        action="store_true",
        help="reason serve --no-prompt-cache: it decodes every prompt in full",
    )
    args = parser.parse_args()
    if args.rounds and not args.peer:
        parser.error("--rounds needs --peer")
    if args.peer_only and not args.peer:
        parser.error("--peer-only needs --peer")
    if args.peer:
        llama_server_binary(args.llama_server)  # fail before the long first phase
    if args.rounds:
        sys.exit(run_fair(args))
    if args.peer_only:
        from reasoncli.models.catalog import load_catalog
        from reasoncli.models.resolve import resolve_model

        name = resolve_model(args.model, load_catalog()).spec.name
        sys.exit(1 if run_peer(args, name)[1] else 0)

    logs = Path(tempfile.mkdtemp(prefix="serve-load-")) / "history.sqlite3"
    proc, url = start_server(args, logs)
    try:
        health = httpx.get(f"{url}/health", timeout=10).json()
        model = health["model"]
        engine_pid = health["engine"]["pid"]
        plans = make_plans(args.requests, model, args.max_tokens, args.seed)
        warm = run_load(url, make_plans(args.warmup, model, args.max_tokens, args.seed + 1),
                        args.clients, time.monotonic() + 300)  # fmt: skip
        rss0 = (rss_mb(proc.pid), rss_mb(engine_pid))
        t0 = time.monotonic()
        outcomes = run_load(url, plans, args.clients, t0 + args.time_limit)
        wall = time.monotonic() - t0
        health = httpx.get(f"{url}/health", timeout=10).json()
        engine_pid = health["engine"]["pid"]
        rss1 = (rss_mb(proc.pid), rss_mb(engine_pid))
    except BaseException:
        proc.kill()
        raise
    ours = summary(outcomes, wall)
    statuses = Counter(o.status for o in outcomes)
    ok = [o for o in outcomes if o.kind == "ok" and o.status == 200]
    no_retry = sum(1 for o in outcomes if o.status in (429, 503) and not o.retry_after)
    bad_malformed = [o for o in outcomes if o.kind == "malformed" and o.status != 400]
    print(f"reason serve load: {len(outcomes)} of {len(plans)} requests sent in {wall:.1f} s, "
          f"{args.clients} clients, max_tokens {args.max_tokens}, model {model}"
          f" (warm-up: {len(warm)} requests)")  # fmt: skip
    print(f"  throughput: {ours['requests/s']:.2f} requests/s, {ours['generated tok/s']:.1f} "
          "generated tok/s (answered, non-dropped requests)")  # fmt: skip
    print(f"  latency of 200s: p50 {ours['p50 latency s']:.2f} s, p95 "
          f"{ours['p95 latency s']:.2f} s, p99 {ours['p99 latency s']:.2f} s; time to first "
          f"byte p50 {pct([o.ttfb for o in ok], 0.5):.2f} s, p95 "
          f"{ours['p95 first byte s']:.2f} s")  # fmt: skip
    kinds = Counter(o.kind for o in outcomes)
    print(f"  statuses: {dict(sorted(statuses.items()))}; kinds: {dict(kinds)}")
    classes = Counter(f"{s // 100}xx" if s > 0 else "no reply" for s in statuses.elements())
    print(
        f"  by class: {dict(sorted(classes.items()))}; 429: {statuses[429]}, "
        f"503: {statuses[503]}, without Retry-After: {no_retry}; 500s: {statuses[500]}"
    )
    print(f"  malformed bodies answered other than 400: {len(bad_malformed)}; sent again "
          f"after a connection closed unanswered: {sum(o.resent for o in outcomes)}")  # fmt: skip
    growth = [(b - a) / a if a else 0.0 for a, b in zip(rss0, rss1, strict=True)]
    print(
        f"  RSS MB (server, engine): before {rss0[0]:.0f}, {rss0[1]:.0f}; after "
        f"{rss1[0]:.0f}, {rss1[1]:.0f}; growth {growth[0]:+.1%}, {growth[1]:+.1%}"
    )
    errors = Counter(o.error[:120] for o in outcomes if o.error)
    for text, n in errors.most_common(5):
        print(f"  error x{n}: {text}")

    tail = make_plans(args.clients, model, max(args.max_tokens, 256), args.seed + 2)
    term, took, rc = sigterm_phase(proc, url, tail, args.sigterm_deadline)
    print(
        f"  SIGTERM with {len(tail)} requests in flight: exit {rc} after {took:.1f} s "
        f"(deadline {args.sigterm_deadline:g} s); their statuses {dict(sorted(term.items()))}"
    )
    answered = [o.marker for o in ok]
    integrity, found, runs = check_history(logs, answered)
    print(f"  history: integrity_check {integrity}; {found} of {len(answered)} answered requests "
          f"found with their branches; {runs} runs in all")  # fmt: skip
    failed = statuses[500] + len(bad_malformed) + no_retry + (integrity != "ok")
    failed += found != len(answered) or took > args.sigterm_deadline
    print("  result:", "PASS" if not failed else "FAIL")
    if args.peer:
        peer, peer_failed = run_peer(args, model)
        side_by_side(ours, peer)
        failed += peer_failed
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
