"""Issue #28's serial table for a thinking model, from `reason bench run -s think` result files:
per budget (or forced run), accuracy with its 95% Wilson interval, tokens per question, mean
thinking tokens (the text before `</think>`, counted with the model's tokenizer when one is
given) and the share of answers whose thought the model closed itself (at the cap `think`
closes it for the model and appends its answer text, "Final Answer:", which marks it).

    python benchmarks/think_table.py RESULTS.jsonl [RESULTS.jsonl ...] [--tokenizer DIR]
        [--against OTHER.jsonl]

--against pairs each file's largest budget with OTHER's largest budget on the questions both
answered (another model's run on the same questions): the difference in points with a paired
bootstrap 95% interval (4000 seeded resamples over questions).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

from reasoncli.bench.metrics import wilson

CLOSE = "</think>"
ANSWER_TEXT = "Final Answer:"
"""What `think` appends after the close tag when the budget runs out (its --answer-text)."""


def rows_of(path: Path) -> tuple[dict[str, Any], dict[Any, list[dict[str, Any]]]]:
    run: dict[str, Any] = {}
    rows: dict[Any, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record.get("type") == "run" and not run:
            run = record
        elif record.get("type") == "sample":
            budget = record.get("budget_tokens") or record.get("max_tokens") or record.get("budget")
            rows.setdefault(budget, []).append(record)
    return run, rows


def paired(a: dict[str, bool], b: dict[str, bool]) -> str:
    ids = [i for i in a if i in b]
    diff = [int(a[i]) - int(b[i]) for i in ids]
    rng = random.Random(0)
    means = sorted(sum(rng.choices(diff, k=len(diff))) / len(diff) for _ in range(4000))
    return (
        f"{100 * sum(diff) / len(ids):+.1f} points ({100 * means[100]:+.1f} to "
        f"{100 * means[3899]:+.1f}) on {len(ids)} questions"
    )


def _largest(groups: dict[Any, list[dict[str, Any]]]) -> dict[str, bool]:
    key = max(groups, key=lambda b: b if isinstance(b, int) else -1)
    return {r["id"]: bool(r["correct"]) for r in groups[key]}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--tokenizer", help="a transformers tokenizer dir for thinking tokens")
    parser.add_argument("--against", type=Path, help="pair each file's largest budget with it")
    args = parser.parse_args(argv)
    count = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pairs = []
    print(
        "| run | budget | questions | accuracy (95%) | tokens/q | thinking tokens/q | "
        "closed by the model |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in args.files:
        run, groups = rows_of(path)
        label = path.stem
        if run.get("min_tokens"):
            label += f" (--min-tokens {run['min_tokens']})"
        for budget, rows in groups.items():
            n = len(rows)
            right = sum(bool(r["correct"]) for r in rows)
            lo, hi = wilson(right, n, z=1.96)
            texts = [(r.get("texts") or [""])[0] for r in rows]
            traces = [t.split(CLOSE, 1)[0] for t in texts]
            forced = f"{CLOSE}\n\n{run.get('answer_text') or ANSWER_TEXT}"
            closed = sum(CLOSE in t and forced not in t for t in texts)
            thinking = (
                f"{sum(count(t) for t in traces) / n:.1f}"
                if count
                else f"~{sum(len(t) for t in traces) / n / 4:.0f} (chars/4)"
            )
            print(
                f"| {label} | {budget} | {n} | {right / n:.1%} ({lo:.1%}–{hi:.1%}) | "
                f"{sum(r['tokens'] for r in rows) / n:.0f} | {thinking} | {closed / n:.0%} |"
            )
        if args.against:
            _, other = rows_of(args.against)
            pairs.append(
                f"{label} against {args.against.stem}: {paired(_largest(groups), _largest(other))}"
            )
    print("\n".join(["", *pairs]) if pairs else "", end="\n" if pairs else "")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
