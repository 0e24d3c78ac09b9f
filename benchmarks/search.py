"""Beam search and DVTS against best-of-n at the same number of branches, on the embedded model.

Per strategy, medians over interleaved runs (every rep runs each question with each strategy,
the strategy order rotated per rep, so load drift on shared cores hits all alike):
  - wall time of the strategy run (model load excluded, prompt prefill included);
  - tokens generated (sampled) by all branches or candidates;
  - tokens decoded: the prompt once plus what each branch decoded itself;
  - tokens the same run would decode without KV reuse: each branch or candidate re-reading the
    prompt and, for search, every step it inherited from its ancestors;
  - accuracy against the known answer (a handful of questions: a sanity check, not a result).

Best-of-n is the `best-of-n` strategy when it is registered, else `vote` with the same N (the
line under the table says which). All use the same verifier for beam/DVTS and best-of-n.

    python benchmarks/search.py [--reps 2] [--branches 8] [--beam-width 2] [--max-tokens 192]
        [--step-tokens 48] [--threads 2] [--verifier confidence] [--questions 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

from reasoncli.answers import answers_equivalent
from reasoncli.cli.runner import ModelRequest, load_session
from reasoncli.events import discard
from reasoncli.session import Session
from reasoncli.strategies.base import StrategyOptions, get_strategy, strategy_names

# Questions the embedded SmolLM2-135M gets right only some of the time.
QUESTIONS = [
    ("What is 3 + 4?", "7"),
    ("Tom has 5 apples and buys 3 more. How many apples does he have now?", "8"),
    ("What is 12 + 9?", "21"),
    ("A box holds 6 eggs. How many eggs are in 2 boxes?", "12"),
]


def baseline_name() -> str:
    return "best-of-n" if "best-of-n" in strategy_names() else "vote"


def run_once(
    session: Session, strategy: str, question: str, expect: str, options: StrategyOptions
) -> dict[str, Any]:
    """One strategy run and its token accounting."""
    started = time.perf_counter()
    result = get_strategy(strategy).run(question, session, options, discard)
    wall = time.perf_counter() - started
    d = result.details
    p = result.prompt_tokens
    if "decoded_tokens" in d:  # search strategies account for their forks themselves
        decoded, without = d["decoded_tokens"], d["tokens_without_reuse"]
    else:  # parallel branches share only the prompt
        decoded = p - 1 + result.generated_tokens
        without = len(result.branches) * p + result.generated_tokens
    return {
        "strategy": strategy,
        "question": question,
        "answer": result.answer,
        "correct": result.answer is not None and answers_equivalent(result.answer, expect),
        "wall_s": wall,
        "generated": result.generated_tokens,
        "decoded": decoded,
        "without_reuse": without,
        "verify_s": float(d.get("verify_s", 0.0)),
        "candidates": d.get("candidates", len(result.branches)),
        "steps": d.get("steps"),
    }


def summarize(rows: list[dict[str, Any]], strategies: list[str]) -> list[dict[str, Any]]:
    table = []
    for name in strategies:
        mine = [r for r in rows if r["strategy"] == name]

        def med(key: str, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[key] for r in mine)

        table.append(
            {
                "strategy": name,
                "runs": len(mine),
                "wall_s": med("wall_s"),
                "generated": med("generated"),
                "decoded": med("decoded"),
                "without_reuse": med("without_reuse"),
                "reuse_x": med("without_reuse") / max(1.0, med("decoded")),
                "verify_s": med("verify_s"),
                "candidates": med("candidates"),
                "accuracy": sum(r["correct"] for r in mine) / len(mine),
            }
        )
    return table


def print_table(table: list[dict[str, Any]], base: str) -> None:
    head = (
        f"{'strategy':<10} {'runs':>4} {'wall s':>7} {'vs base':>7} {'generated':>9} "
        f"{'decoded':>8} {'w/o reuse':>9} {'reuse':>6} {'verify s':>8} {'cands':>5} {'acc':>5}"
    )
    print(head)
    print("-" * len(head))
    base_wall = next(t["wall_s"] for t in table if t["strategy"] == base)
    for t in table:
        print(
            f"{t['strategy']:<10} {t['runs']:>4} {t['wall_s']:>7.2f} "
            f"{t['wall_s'] / base_wall:>6.2f}x {t['generated']:>9.0f} {t['decoded']:>8.0f} "
            f"{t['without_reuse']:>9.0f} {t['reuse_x']:>5.1f}x {t['verify_s']:>8.3f} "
            f"{t['candidates']:>5.0f} {t['accuracy']:>5.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="catalog name or .gguf (default model)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--questions", type=int, default=3, help=f"at most {len(QUESTIONS)}")
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--beam-width", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--step-tokens", type=int, default=48)
    parser.add_argument("--verifier", default="confidence")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", dest="json_out", default=None, help="write every run here")
    args = parser.parse_args()

    base = baseline_name()
    strategies = ["beam", "dvts", base]
    options = StrategyOptions(
        branches=args.branches,
        beam_width=args.beam_width,
        max_tokens=args.max_tokens,
        step_tokens=args.step_tokens,
        verifier=args.verifier,
    )
    for name in strategies:
        get_strategy(name).check(options)
    questions = QUESTIONS[: max(1, args.questions)]
    session = load_session(ModelRequest(args.model, threads=args.threads))
    try:
        warm = replace(options, max_tokens=16, step_tokens=8)
        for name in strategies:  # first-touch costs (allocations, page faults) stay out
            run_once(session, name, *questions[0], warm)
        rows = []
        for rep in range(args.reps):
            order = strategies[rep % 3 :] + strategies[: rep % 3]
            for qi, (question, expect) in enumerate(questions):
                for name in order:
                    seeded = replace(options, seed=1000 * rep + 100 * qi)
                    rows.append(run_once(session, name, question, expect, seeded))
    finally:
        session.close()

    print(
        f"{session.name}: N={args.branches}, beam width {args.beam_width}, "
        f"{args.step_tokens}-token steps, {args.max_tokens} max tokens, verifier "
        f"{args.verifier}, {args.threads} threads; {len(questions)} questions x {args.reps} reps"
    )
    table = summarize(rows, strategies)
    print_table(table, base)
    if base == "vote":
        print("best-of-n is not registered in this build: the baseline is `vote` with the same N")
    print(
        "decoded = prompt once + each branch's own tokens; w/o reuse = the same run if every "
        "branch re-read the prompt and its ancestors' steps"
    )
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"args": vars(args), "summary": table, "runs": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
