"""How `auto` spends its token budget across difficulty bins, on questions with known answers.

Each question gets one `auto` run. The rows bin questions by pilot agreement (the leading
answer's share of the pilots, which is what `auto` reads as difficulty) and show the path it
chose, the tokens each phase took, how much of the budget was used, and accuracy: of the pilot
vote alone (what stopping after the pilot would answer) and of the final answer.

    python benchmarks/auto.py                      # arithmetic, 12 questions, a few minutes
    python benchmarks/auto.py --data gsm8k --questions 20 --budget-tokens 2048 --max-tokens 256
    python benchmarks/auto.py --questions 3 --budget-tokens 384 --max-tokens 64   # smoke

`--data arith` mixes one-digit sums, two-digit sums and two-digit products, so a small model is
sometimes right and agreement varies; `--data gsm8k` reads GSM8K train questions and their
`#### N` answers from ../shared/data/gsm8k/train.jsonl (or `--gsm8k PATH`).

On cores shared with other jobs pass `--threads 1`: llama.cpp's two-thread barrier spins there,
and a 2-thread run measured 20x slower than a 1-thread one.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli import api
from reasoncli.answers import answers_equivalent
from reasoncli.options import StrategyOptions
from reasoncli.strategies.auto import PATHS

GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "train.jsonl"


@dataclass
class Item:
    question: str
    gold: str


@dataclass
class Outcome:
    item: Item
    agreement: float | None
    path: str | None
    tokens: dict[str, int]
    budget: int
    pilot_right: bool
    final_right: bool
    answer: str | None
    seconds: float


def arithmetic(n: int, seed: int) -> list[Item]:
    """Three levels in turn: a + b (one digit), ab + cd, ab x cd."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        level = i % 3
        if level == 0:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            items.append(Item(f"What is {a} + {b}?", str(a + b)))
        elif level == 1:
            a, b = rng.randint(11, 49), rng.randint(11, 49)
            items.append(Item(f"What is {a} + {b}?", str(a + b)))
        else:
            a, b = rng.randint(11, 29), rng.randint(11, 19)
            items.append(Item(f"What is {a} * {b}?", str(a * b)))
    return items


def gsm8k(n: int, path: Path) -> list[Item]:
    items = []
    with path.open() as fh:
        for line in fh:
            row = json.loads(line)
            gold = row["answer"].rsplit("####", 1)[1].strip().replace(",", "")
            items.append(Item(row["question"], gold))
            if len(items) == n:
                break
    return items


def right(answer: str | None, gold: str) -> bool:
    return answer is not None and answers_equivalent(answer, gold)


def run_one(session: Any, item: Item, options: StrategyOptions) -> Outcome:
    t0 = time.perf_counter()
    result = api.run(item.question, session, "auto", options)
    d = result.details
    return Outcome(
        item=item,
        agreement=d["agreement"],
        path=d["path"],
        tokens=d["tokens"],
        budget=d["budget_tokens"],
        pilot_right=right(d["pilot_answer"], item.gold),
        final_right=right(result.answer, item.gold),
        answer=result.answer,
        seconds=time.perf_counter() - t0,
    )


def table(outcomes: Sequence[Outcome]) -> str:
    """One row per pilot-agreement bin, then the total."""
    header = (
        f"{'agreement':>9}  {'n':>3}  {'easy/med/hard':>13}  {'pilot':>6}  {'widen':>6}  "
        f"{'revise':>6}  {'total':>6}  {'budget':>6}  {'acc pilot':>9}  {'acc final':>9}"
    )
    lines = [header, "-" * len(header)]
    bins = sorted({o.agreement for o in outcomes if o.agreement is not None}, reverse=True)
    groups = [(f"{a:.2f}", [o for o in outcomes if o.agreement == a]) for a in bins]
    groups.append(("all", list(outcomes)))
    for name, rows in groups:
        if not rows:
            continue
        paths = "/".join(str(sum(o.path == p for o in rows)) for p in PATHS)

        def mean(key: str, rows: list[Outcome] = rows) -> float:
            return statistics.fmean(o.tokens[key] for o in rows)

        used = statistics.fmean(o.tokens["total"] / o.budget for o in rows)
        pilot_acc = statistics.fmean(o.pilot_right for o in rows)
        final_acc = statistics.fmean(o.final_right for o in rows)
        spent = "  ".join(f"{mean(k):>6.0f}" for k in ("pilot", "widen", "revise", "total"))
        lines.append(
            f"{name:>9}  {len(rows):>3}  {paths:>13}  {spent}  {used:>6.0%}  "
            f"{pilot_acc:>9.0%}  {final_acc:>9.0%}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", choices=("arith", "gsm8k"), default="arith")
    ap.add_argument("--gsm8k", type=Path, default=GSM8K, help="GSM8K jsonl file")
    ap.add_argument("--questions", type=int, default=12)
    ap.add_argument("--budget-tokens", type=int, default=1024)
    ap.add_argument("--pilot", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--model", default=None, help="catalog name or .gguf path (default model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write every question's outcome here")
    args = ap.parse_args(argv)

    items = (
        arithmetic(args.questions, args.seed)
        if args.data == "arith"
        else gsm8k(args.questions, args.gsm8k)
    )
    session = api.open_session(args.model, threads=args.threads)
    options = StrategyOptions(
        max_tokens=args.max_tokens,
        budget_tokens=args.budget_tokens,
        pilot=args.pilot,
        seed=args.seed,
    )
    print(
        f"auto on {session.name}: {len(items)} {args.data} questions, budget "
        f"{args.budget_tokens} tokens, {args.pilot} pilots x {args.max_tokens} max tokens",
        flush=True,
    )
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    try:
        for i, item in enumerate(items, 1):
            o = run_one(session, item, options)
            outcomes.append(o)
            mark = "ok" if o.final_right else "--"
            print(
                f"[{i:>2}/{len(items)}] {mark} {o.path or '?':6} agree {o.agreement or 0:.2f} "
                f"{o.tokens['total']:>5} tok {o.seconds:5.1f}s  gold {item.gold:>6}  "
                f"got {o.answer}",
                flush=True,
            )
    finally:
        session.close()
    print()
    print(table(outcomes))
    print(f"\nwall {time.perf_counter() - t0:.0f}s")
    if args.json:
        rows = [
            {
                "question": o.item.question,
                "gold": o.item.gold,
                "answer": o.answer,
                "agreement": o.agreement,
                "path": o.path,
                "tokens": o.tokens,
                "pilot_right": o.pilot_right,
                "final_right": o.final_right,
                "seconds": round(o.seconds, 2),
            }
            for o in outcomes
        ]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
