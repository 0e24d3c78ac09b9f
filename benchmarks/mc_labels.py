"""Monte-Carlo PRM labelling speed: one engine per step prefix against a question's prefixes
batched in one engine (what `reason train verifier --kind prm` does).

Both sides complete the same pending prefixes of the first questions in a rollouts file `k`
times; reps are interleaved and medians reported, with the tokens each side generated.

    python benchmarks/mc_labels.py rollouts.jsonl -m smollm2-arith-t10 [--questions 6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from reasoncli.models.catalog import load_catalog
from reasoncli.models.resolve import resolve_model
from reasoncli.session import Session
from reasoncli.train.verifier_data import STEP_JOIN, LabelCache, pending_prefixes, read_rollouts
from reasoncli.train.verifier_job import batched_completer


def per_prefix(policy: Any, question: str, prefix: str, k: int, max_tokens: int) -> int:
    """The old way: an engine for each prefix, its prompt holding question and prefix."""
    text = policy.prompt_text(question, assistant_prefix=prefix + STEP_JOIN)
    with policy.open_engine(
        policy.prompt_tokens(text), max_branches=k, max_tokens=max_tokens
    ) as engine:
        branches = [
            engine.add_branch(policy.sampling.with_seed(i), max_tokens, policy.stop)
            for i in range(k)
        ]
        for _ in engine.run():
            pass
        return sum(b.n_tokens for b in branches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rollouts", type=Path)
    parser.add_argument("-m", "--model", default="smollm2-arith-t10")
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("-k", type=int, default=4, help="completions per prefix")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        todo = pending_prefixes(read_rollouts([args.rollouts]), LabelCache(Path(tmp) / "x"))
    by_question: dict[str, list[str]] = {}
    for graded, prefix in todo:
        by_question.setdefault(graded.question, []).append(prefix)
    work = list(by_question.items())[: args.questions]
    n = sum(len(ps) for _, ps in work)
    policy = Session.load(resolve_model(args.model, load_catalog()))
    batched = batched_completer(policy, args.max_tokens, 0)
    old_s, new_s, old_tok, new_tok = [], [], 0, 0
    for _ in range(args.reps):
        t = time.perf_counter()
        old_tok = sum(
            per_prefix(policy, q, p, args.k, args.max_tokens) for q, ps in work for p in ps
        )
        old_s.append(time.perf_counter() - t)
        t = time.perf_counter()
        outs = [batched(q, [p + STEP_JOIN for p in ps], args.k) for q, ps in work]
        new_s.append(time.perf_counter() - t)
        new_tok = sum(
            len(policy.model.tokenize(text, add_special=False))
            for groups in outs
            for group in groups
            for text in group
        )
    old, new = statistics.median(old_s), statistics.median(new_s)
    print(f"{n} prefixes of {len(work)} questions, {args.k} completions each, {args.reps} reps")
    print(f"engine per prefix    {old:6.1f} s  {old_tok:6d} tokens")
    print(f"batched per question {new:6.1f} s  {new_tok:6d} tokens (re-tokenized)")
    print(f"speed-up: {old / new:.2f}x")


if __name__ == "__main__":
    main()
