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
        [--max-tokens 16] [--threads 2] [--time-limit 900]

Bounded: --requests in all, --time-limit seconds at most (requests not sent by then are
skipped and reported).
"""

from __future__ import annotations

import argparse
import json
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx

QUESTIONS = [
    "A farmer has 17 cows and buys 23 more. How many cows does he have?",
    "Tom reads 12 pages a day for 9 days. How many pages does he read?",
    "A box holds 48 apples. 15 are eaten. How many are left?",
    "What is 7 times 8 plus 6?",
    "Is 91 a prime number?",
]
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
    retry_after: bool = True
    marker: str = ""
    error: str = ""


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
            body["reason"] = {"answer_tokens": 8}
        if chat:
            body["messages"] = [{"role": "user", "content": question}]
        else:
            body["prompt"] = question
        plans.append(Plan(i, marker, chat, strategy, stream, drop or False, bad, body))
    return plans


def start_server(args: argparse.Namespace, logs: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "reasoncli", "serve", "--host", "127.0.0.1", "--port", "0",
        "--max-branches", str(args.max_branches), "--max-requests", str(args.max_requests),
        "--queue", str(args.queue if args.queue is not None else args.clients),
        "--threads", str(args.threads), "--ctx", str(args.ctx),
    ]  # fmt: skip
    if args.model:
        cmd += ["--model", args.model]
    env = {**os.environ, "REASON_LOGS_PATH": str(logs)}
    env.pop("REASON_NO_LOG", None)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    if not m:
        proc.kill()
        raise SystemExit(f"server did not start: {line}{proc.stderr.read()}")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    return proc, f"http://127.0.0.1:{m.group(1)}"


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
        tokens = (
            r.json().get("usage", {}).get("completion_tokens", 0) if r.status_code == 200 else 0
        )
        return Outcome(
            "ok", r.status_code, dt, dt, tokens,
            retry_after=r.status_code not in (429, 503) or "retry-after" in r.headers,
            marker=plan.marker, error="" if r.status_code < 400 else r.text[:200],
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
                tokens = usage.get("completion_tokens", tokens)
        dt = time.perf_counter() - t0
        return Outcome("dropped" if plan.drop else "ok", 200, dt, ttfb, tokens, marker=plan.marker)


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
                    out = send(client, url, plan)
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
    args = parser.parse_args()

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
    statuses = Counter(o.status for o in outcomes)
    ok = [o for o in outcomes if o.kind == "ok" and o.status == 200]
    lat = [o.latency for o in ok]
    ttfb = [o.ttfb for o in ok]
    tokens = sum(o.tokens for o in ok)
    no_retry = sum(1 for o in outcomes if o.status in (429, 503) and not o.retry_after)
    bad_malformed = [o for o in outcomes if o.kind == "malformed" and o.status != 400]
    print(f"reason serve load: {len(outcomes)} of {len(plans)} requests sent in {wall:.1f} s, "
          f"{args.clients} clients, max_tokens {args.max_tokens}, model {model}"
          f" (warm-up: {len(warm)} requests)")  # fmt: skip
    print(f"  throughput: {len(outcomes) / wall:.2f} requests/s, {tokens / wall:.1f} generated "
          "tok/s (answered, non-dropped requests)")  # fmt: skip
    print(f"  latency of 200s: p50 {pct(lat, .5):.2f} s, p95 {pct(lat, .95):.2f} s, "
          f"p99 {pct(lat, .99):.2f} s; time to first byte p50 {pct(ttfb, .5):.2f} s, "
          f"p95 {pct(ttfb, .95):.2f} s")  # fmt: skip
    kinds = Counter(o.kind for o in outcomes)
    print(f"  statuses: {dict(sorted(statuses.items()))}; kinds: {dict(kinds)}")
    classes = Counter(f"{s // 100}xx" if s > 0 else "no reply" for s in statuses.elements())
    print(
        f"  by class: {dict(sorted(classes.items()))}; 429: {statuses[429]}, "
        f"503: {statuses[503]}, without Retry-After: {no_retry}; 500s: {statuses[500]}"
    )
    print(f"  malformed bodies answered other than 400: {len(bad_malformed)}")
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
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
