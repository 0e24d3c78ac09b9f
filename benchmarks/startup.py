"""Where `reason ask`'s start-up time goes, before the first token appears (issue #13).

Every rep runs fresh processes, since imports and page-cache state are what start-up pays for:
  - `import reasoncli.cli.app`: wall time of a bare `python -c`, and the import's own
    cumulative time from `python -X importtime` (the slowest imports under it are listed);
  - in one child, the steps `reason ask` takes, in its order: resolve + GGUF header check,
    llama_cpp import, model load (`Session.load`), chat-template render, tokenize, context +
    prompt prefill (`open_engine`), and the first sampled token.
Prints medians of `--reps`.

    python benchmarks/startup.py [--reps 5] [--threads 1] [--model NAME_OR_PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import textwrap
import time

QUESTION = "What is 17 times 23?"

CHILD = textwrap.dedent(
    """
    import json, sys, time
    t = {}
    t0 = time.perf_counter()
    from reasoncli.cli.runner import ModelRequest
    from reasoncli.models.catalog import load_catalog
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.resolve import resolve_model
    from reasoncli.session import Session, SessionOptions
    t["import reasoncli (runner, session)"] = time.perf_counter() - t0
    name = sys.argv[1] or None
    s = time.perf_counter()
    resolved = resolve_model(name, load_catalog())
    read_gguf_info(resolved.path)
    t["resolve + GGUF header"] = time.perf_counter() - s
    s = time.perf_counter()
    from reasoncli.engine.model import load_llama_cpp
    load_llama_cpp()
    t["import llama_cpp"] = time.perf_counter() - s
    s = time.perf_counter()
    session = Session.load(resolved, SessionOptions(threads=int(sys.argv[2])))
    t["model load"] = time.perf_counter() - s
    s = time.perf_counter()
    text = session.prompt_text(sys.argv[3])
    t["chat-template render"] = time.perf_counter() - s
    s = time.perf_counter()
    tokens = session.prompt_tokens(text)
    t["tokenize"] = time.perf_counter() - s
    s = time.perf_counter()
    engine = session.open_engine(tokens, max_branches=8, max_tokens=256)
    t["context + prefill"] = time.perf_counter() - s
    s = time.perf_counter()
    for i in range(8):
        engine.add_branch(session.sampling.with_seed(i), 256, session.stop)
    engine.step()
    t["first token (8 branches)"] = time.perf_counter() - s
    t["total to first token"] = time.perf_counter() - t0
    engine.close()
    session.close()
    t["prompt tokens"] = len(tokens)
    print(json.dumps(t))
    """
)


def import_times() -> tuple[float, float, dict[str, float]]:
    """Bare-import wall time, its `-X importtime` cumulative time, and each module's."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import reasoncli.cli.app"], check=True)
    wall = time.perf_counter() - t0
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import reasoncli.cli.app"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    cumulative: dict[str, float] = {}
    for line in out.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            cumulative[m.group(3)] = int(m.group(1)) / 1e6
    return wall, cumulative.get("reasoncli.cli.app", 0.0), cumulative


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="", help="catalog name or .gguf (default: the default)")
    ap.add_argument("--top", type=int, default=8, help="slowest imports to list")
    args = ap.parse_args()

    rows: dict[str, list[float]] = {}
    modules: dict[str, list[float]] = {}
    for rep in range(args.reps):
        wall, own, cumulative = import_times()
        rows.setdefault("python -c 'import reasoncli.cli.app' (wall)", []).append(wall)
        rows.setdefault("  of which the import itself (-X importtime)", []).append(own)
        for name, sec in cumulative.items():
            modules.setdefault(name, []).append(sec)
        child = subprocess.run(
            [sys.executable, "-c", CHILD, args.model, str(args.threads), QUESTION],
            check=True,
            capture_output=True,
            text=True,
        )
        for name, sec in json.loads(child.stdout.strip().splitlines()[-1]).items():
            rows.setdefault(name, []).append(sec)
        print(f"  rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)

    prompt = rows.pop("prompt tokens")
    print(f"{args.reps} reps, {args.threads} threads, prompt {int(prompt[0])} tokens, medians")
    width = max(len(k) for k in rows)
    for name, values in rows.items():
        print(f"{name:<{width}} {statistics.median(values) * 1000:>8.1f} ms")
    print("\nslowest imports in that process (cumulative, medians):")
    top = sorted(modules.items(), key=lambda kv: -statistics.median(kv[1]))
    shown = [(n, v) for n, v in top if n != "reasoncli.cli.app"][: args.top]
    for name, values in shown:
        print(f"  {name:<40} {statistics.median(values) * 1000:>8.1f} ms")


if __name__ == "__main__":
    main()
