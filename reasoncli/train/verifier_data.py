"""What a verifier learns from: graded solutions from `reason rollouts`, cut into examples.

- ORM (outcome reward model): one example per solution, labelled by its graded accuracy.
- PRM (process reward model): one example per step prefix (`solution_steps`). A prefix's label
  is Math-Shepherd's soft estimate: the share of `k` completions sampled from the end of that
  step, by the policy that wrote the rollouts, that reach the expected answer. The whole
  solution's label is its own grade. A question's prefixes are completed together: its prompt
  is decoded once, each branch is a copy of that KV cache (`BranchEngine.add_branch`) with its
  prefix forced in, and all `k` x prefixes branches decode in one batch (1.65x faster than an
  engine per prefix, measured on t10's difficulty-2 rollouts).
  A prefix that already states a final answer ("The answer is 77.") is *settled*: it is
  labelled by that answer's grade without sampling, because completions from there only
  restate it (on the t10 model's difficulty-3 rollouts, 364 of 375 solutions ended on the
  answer they first stated).

Labels are appended to a JSONL file as they are computed, so an interrupted labelling pass
resumes where it stopped. Held-out questions are the ones with the smallest content hashes,
the rule `reason train grpo --data` uses, so a question's solutions never straddle the split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli.answers import extract_answer, final_answer_span
from reasoncli.errors import InputError
from reasoncli.rewards import accuracy_reward
from reasoncli.solution_steps import step_prefixes

__all__ = [
    "Example",
    "Graded",
    "LabelCache",
    "mc_step_labels",
    "orm_examples",
    "prm_examples",
    "read_rollouts",
    "settled_label",
    "split_heldout",
]

STEP_JOIN = "\n"
"""What follows a step prefix when the policy continues it: the line break that ended it."""


@dataclass(frozen=True)
class Graded:
    """One sampled solution to one question, with its grade (1.0 correct, 0.0 not)."""

    question: str
    expected: str
    text: str
    correct: float
    policy: str | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha1(self.question.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Example:
    """A (question, solution or solution prefix) pair and its target P(correct)."""

    question: str
    solution: str
    label: float


def _question(prompt: Any, where: str) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [
            m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"
        ]
        if users and isinstance(users[-1], str):
            return users[-1]
    raise InputError(f"{where}: `prompt` is neither text nor a conversation with a user turn")


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content") or "")
    return ""


def read_rollouts(paths: list[Path]) -> list[Graded]:
    """Every graded completion in `reason rollouts` files; one-line InputErrors otherwise."""
    graded: list[Graded] = []
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such rollouts file")
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{n}"
                try:
                    row = json.loads(line)
                    completions = row["completions"]
                    accuracy = row["reward_components"]["accuracy"]
                    expected = str(row["answer"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise InputError(
                        f"{where}: not a `reason rollouts` line (needs prompt, completions, "
                        "answer and reward_components.accuracy)"
                    ) from None
                if len(completions) != len(accuracy):
                    raise InputError(
                        f"{where}: {len(completions)} completions, {len(accuracy)} grades"
                    )
                question = _question(row.get("prompt"), where)
                policy = (row.get("rollout") or {}).get("model_arg")
                graded.extend(
                    Graded(question, expected, _text(c), float(a), policy)
                    for c, a in zip(completions, accuracy, strict=True)
                )
    if not graded:
        raise InputError(f"{', '.join(map(str, paths))}: no graded completions")
    return graded


def split_heldout(graded: list[Graded], heldout: int) -> tuple[list[Graded], list[Graded]]:
    """(train, held-out): the `heldout` questions with the smallest hashes are held out."""
    digests = sorted({g.digest for g in graded})
    if heldout >= len(digests):
        raise InputError(
            f"--heldout {heldout} leaves nothing to train on: the rollouts have "
            f"{len(digests)} question(s)"
        )
    held = set(digests[:heldout])
    return [g for g in graded if g.digest not in held], [g for g in graded if g.digest in held]


def orm_examples(graded: list[Graded]) -> list[Example]:
    return [Example(g.question, g.text.strip(), g.correct) for g in graded if g.text.strip()]


# -- PRM labels ---------------------------------------------------------------------------------
class LabelCache:
    """Monte-Carlo step labels on disk, keyed by (question, prefix); appended as computed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.labels: dict[tuple[str, str], float] = {}
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                        self.labels[(row["question"], row["prefix"])] = float(row["label"])
                    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue  # a line cut off by a crash: recomputed

    def get(self, question: str, prefix: str) -> float | None:
        return self.labels.get((question, prefix))

    def add(self, question: str, prefix: str, label: float, answers: list[str | None]) -> None:
        self.labels[(question, prefix)] = label
        row = {"question": question, "prefix": prefix, "label": label, "answers": answers}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def settled_label(prefix: str, expected: str) -> float | None:
    """The grade of the final answer a prefix already states, or None if it states none."""
    if final_answer_span(prefix) is None:
        return None
    return accuracy_reward(extract_answer(prefix), expected)


def pending_prefixes(graded: list[Graded], cache: LabelCache) -> list[tuple[Graded, str]]:
    """Unique (solution, intermediate prefix) pairs that still need Monte-Carlo completions:
    not settled, not labelled yet."""
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[Graded, str]] = []
    for g in graded:
        for prefix in step_prefixes(g.text)[:-1]:
            key = (g.question, prefix)
            if key in seen or cache.get(*key) is not None:
                continue
            if settled_label(prefix, g.expected) is not None:
                continue
            seen.add(key)
            todo.append((g, prefix))
    return todo


Completer = Callable[[str, list[str], int], list[list[str]]]
"""(question, assistant texts so far, k) -> k sampled continuations of each text."""

PREFIXES_PER_CALL = 16
"""Prefixes of one question completed together: 16 x k branches share one decode batch."""


def mc_step_labels(
    todo: list[tuple[Graded, str]], cache: LabelCache, complete: Completer, k: int
) -> Iterator[int]:
    """Label every pending prefix by completing it `k` times; yields the count done so far.

    A question's prefixes go to `complete` together (up to PREFIXES_PER_CALL at a time), so
    their completions decode in one batch over one shared prompt."""
    by_question: dict[str, list[tuple[Graded, str]]] = {}
    for item in todo:
        by_question.setdefault(item[0].question, []).append(item)
    done = 0
    for question, items in by_question.items():
        for start in range(0, len(items), PREFIXES_PER_CALL):
            chunk = items[start : start + PREFIXES_PER_CALL]
            texts = complete(question, [prefix + STEP_JOIN for _, prefix in chunk], k)
            for (g, prefix), outs in zip(chunk, texts, strict=True):
                answers = [extract_answer(prefix + STEP_JOIN + t) for t in outs]
                label = sum(accuracy_reward(a, g.expected) for a in answers) / max(1, len(answers))
                cache.add(g.question, prefix, label, answers)
            done += len(chunk)
            yield done


def prm_examples(graded: list[Graded], cache: LabelCache) -> list[Example]:
    """One example per step prefix; the last step (the whole solution) keeps its own grade,
    a settled one its stated answer's, the rest their Monte-Carlo label."""
    examples: list[Example] = []
    for g in graded:
        prefixes = step_prefixes(g.text)
        for i, prefix in enumerate(prefixes):
            if i == len(prefixes) - 1:
                label: float | None = g.correct
            else:
                label = cache.get(g.question, prefix)
                if label is None:
                    label = settled_label(prefix, g.expected)
            if label is not None:
                examples.append(Example(g.question, prefix, label))
    return examples
