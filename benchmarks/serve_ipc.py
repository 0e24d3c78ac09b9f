"""Which IPC `reason serve` uses between the HTTP server and its engine process.

What crosses: one small message per generated token per branch for streamed requests (an
`Event` dataclass), a `RunOrder` and a `Result` per run, cancels and stats requests. Candidates,
all over a Unix socket pair to a spawned child:

- `connection`: multiprocessing.connection.Connection, pickled tuples (what the server uses);
- `jsonl`: JSON lines on the raw socket (events as dicts, rebuilt by hand on the other side);
- `queue`: two multiprocessing.Queue (pickle plus a feeder thread each way).

Prints, per candidate, events/s one way (child to parent, as token events flow) and the median
round trip of a small request/reply (a cancel or stats call).

    python benchmarks/serve_ipc.py [--events 50000] [--pings 2000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from reasoncli.events import BranchText


def _child(send: Callable[[Any], object], recv: Callable[[], Any], events: int, pings: int) -> None:
    """The engine process's side: answer `pings` stats requests, then stream `events` token
    events and a "done"."""
    for i in range(pings):
        send(("stats", recv()[1], {"rounds": i}))
    for i in range(events):
        send(("event", 1, BranchText(i % 8, "tok", i)))
    send(("done", 1, None, None))


def _child_connection(conn: Any, events: int, pings: int) -> None:
    _child(conn.send, conn.recv, events, pings)


def _child_jsonl(sock: socket.socket, events: int, pings: int) -> None:
    reader = sock.makefile("rb")
    writer = sock.makefile("wb")
    for i in range(pings):
        qid = json.loads(reader.readline())[1]
        writer.write(json.dumps(["stats", qid, {"rounds": i}]).encode() + b"\n")
        writer.flush()
    for i in range(events):
        ev = BranchText(i % 8, "tok", i)
        writer.write(json.dumps(["event", 1, ev.to_json()]).encode() + b"\n")
    writer.write(json.dumps(["done", 1, None, None]).encode() + b"\n")
    writer.flush()


def _child_queue(inbox: Any, outbox: Any, events: int, pings: int) -> None:
    _child(outbox.put, inbox.get, events, pings)


def _measure(
    proc: Any, pings: int, send: Callable[[Any], object], recv: Callable[[], Any]
) -> tuple[float, float]:
    """`pings` stats round trips, then the rate of the events that follow until "done"; joins
    the child `proc`. Returns (events/s, median round trip in s)."""
    rtts = []
    for i in range(pings):
        t0 = time.perf_counter()
        send(("stats", i))
        recv()
        rtts.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = 0
    while recv()[0] == "event":
        n += 1
    rate = n / (time.perf_counter() - t0)
    proc.join()
    return rate, statistics.median(rtts)


def bench_connection(ctx: Any, events: int, pings: int) -> tuple[float, float]:
    conn, theirs = ctx.Pipe()  # a socket pair wrapped in Connection, as the server's
    proc = ctx.Process(target=_child_connection, args=(theirs, events, pings))
    proc.start()
    theirs.close()
    return _measure(proc, pings, conn.send, conn.recv)


def bench_jsonl(ctx: Any, events: int, pings: int) -> tuple[float, float]:
    ours, theirs = socket.socketpair()
    proc = ctx.Process(target=_child_jsonl, args=(theirs, events, pings))
    proc.start()
    theirs.close()
    reader, writer = ours.makefile("rb"), ours.makefile("wb")

    def send(msg: Any) -> None:
        writer.write(json.dumps(list(msg)).encode() + b"\n")
        writer.flush()

    def recv() -> Any:
        msg = json.loads(reader.readline())
        if msg[0] == "event":
            data = msg[2]
            BranchText(data["branch"], data["text"], data["tokens"])  # what the server would need
        return msg

    return _measure(proc, pings, send, recv)


def bench_queue(ctx: Any, events: int, pings: int) -> tuple[float, float]:
    inbox, outbox = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_child_queue, args=(inbox, outbox, events, pings))
    proc.start()
    return _measure(proc, pings, inbox.put, outbox.get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--pings", type=int, default=2_000)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"{'ipc':<12} {'events/s':>10} {'round trip':>11}")
    for name, bench in (
        ("connection", bench_connection),
        ("jsonl", bench_jsonl),
        ("queue", bench_queue),
    ):
        rate, rtt = bench(ctx, args.events, args.pings)
        print(f"{name:<12} {rate:>10,.0f} {rtt * 1e6:>9.0f}us")


if __name__ == "__main__":
    main()
