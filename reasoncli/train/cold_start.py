"""`reason train grpo --format think --cold-start N`: DeepSeek-R1's cold start, small.

R1-Zero's format has to be sampled before the format reward can pay for it; at 135M the closing
`</think>` almost never is (3 of 208 completions in 26 steps here). DeepSeek-R1 starts its RL
from a short supervised stage on a few thousand long chain-of-thought examples in the target
format. This is that stage at our scale, from the model's own work: sample the model being
trained (through llama.cpp, with its own template and answer format) on training problems only,
keep up to N solutions that are right, reason before the answer and stop after it (one per
problem), rewrap each as `reasoning </think> The answer is X.` after the think template's open
`<think>`, and fine-tune on them with the loss on the completion only. GRPO then starts from the
result, which is also the KL reference (R1's RL stage regularizes towards its SFT model).

The examples go to RUN_DIR/cold-start.jsonl and the loss per step to cold-start-log.jsonl; the
fine-tuned weights are saved to RUN_DIR/cold-start/ so a run stopped before its first GRPO
checkpoint resumes without repeating the stage.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasoncli.answers import final_answer_span
from reasoncli.errors import ModelError
from reasoncli.reasoning import THINK_TAGS
from reasoncli.rewards import score_branch
from reasoncli.train.data import TrainProblem
from reasoncli.train.progress import TrainReporter

__all__ = [
    "COLD_START_DIR",
    "COLD_START_FILE",
    "COLD_START_LOG",
    "ColdStartExample",
    "Sampler",
    "collect_examples",
    "fine_tune",
    "llama_sampler",
    "think_completion",
]

COLD_START_FILE = "cold-start.jsonl"
COLD_START_LOG = "cold-start-log.jsonl"
COLD_START_DIR = "cold-start"
SAMPLES_PER_PROBLEM = 4
"""Completions sampled per training problem; the first that qualifies is kept."""
EPOCHS = 2
BATCH = 8
LEARNING_RATE = 2e-5
WARMUP_STEPS = 3
MIN_REASONING_CHARS = 5

Sampler = Callable[[TrainProblem], Sequence[tuple[str, str | None, str]]]
"""A problem's sampled completions as (text, extracted answer, finish reason)."""


@dataclass(frozen=True)
class ColdStartExample:
    id: str
    question: str
    answer: str
    source: str
    """The model's completion as sampled, in its own answer format."""
    completion: str
    """The same solution in the think format: what follows the template's open `<think>`."""

    def to_json(self) -> dict[str, str]:
        """Every field: one line of the cold-start JSONL."""
        return asdict(self)


def think_completion(text: str, answer: str) -> str | None:
    """`text`'s reasoning (everything before its last answer statement) closed by `</think>`,
    then `The answer is ANSWER.`; None when too little reasoning precedes the statement."""
    span = final_answer_span(text)
    if span is None:
        return None
    reasoning = text[: span[0]]
    # A model that restates its answer ("... = 10. The answer is 10. The answer is 10.") thinks
    # up to its first statement; the restatements would teach it to answer inside the thought.
    while (inner := final_answer_span(reasoning)) is not None and _enough(reasoning[: inner[0]]):
        reasoning = reasoning[: inner[0]]
    reasoning = reasoning.strip()
    if not _enough(reasoning) or any(tag in reasoning for tag in THINK_TAGS):
        return None
    return f"{reasoning}\n{THINK_TAGS[1]}\nThe answer is {answer}."


def _enough(reasoning: str) -> bool:
    return len("".join(reasoning.split())) >= MIN_REASONING_CHARS


def qualifies(text: str, extracted: str | None, finish_reason: str, expected: str) -> bool:
    """Right, and stopped by itself right after its answer statement (the rewards' accuracy and
    stop); `think_completion` then asks for some reasoning before the statement."""
    reward = score_branch(text, extracted, finish_reason, expected)
    return reward.accuracy == 1.0 and reward.stop == 1.0


def collect_examples(
    problems: Iterable[TrainProblem],
    sample: Sampler,
    wanted: int,
    reporter: TrainReporter,
) -> tuple[list[ColdStartExample], int]:
    """Up to `wanted` examples, one per problem, in the problems' order; also how many
    problems were tried."""
    examples: list[ColdStartExample] = []
    tried = 0
    for problem in problems:
        if len(examples) >= wanted:
            break
        tried += 1
        for text, extracted, finish in sample(problem):
            if not qualifies(text, extracted, finish, problem.answer):
                continue
            completion = think_completion(text, problem.answer)
            if completion is not None:
                examples.append(
                    ColdStartExample(problem.id, problem.question, problem.answer, text, completion)
                )
                break
        if tried % 25 == 0:
            reporter.status(
                f"cold start: {len(examples)}/{wanted} correct solutions from {tried} problems"
            )
    return examples, tried


def llama_sampler(session: Any, max_tokens: int, seed: int) -> Sampler:
    """Independent samples (`vote`'s branches) from a loaded session, with its model's own
    template, system message and sampling."""
    from reasoncli import api
    from reasoncli.strategies.base import StrategyOptions

    options = StrategyOptions(branches=SAMPLES_PER_PROBLEM, max_tokens=max_tokens, seed=seed)
    prepared = api.prepare(session, "vote", options)

    def sample(problem: TrainProblem) -> list[tuple[str, str | None, str]]:
        result = prepared(problem.question)
        return [(b.text, b.answer, b.finish_reason) for b in result.branches]

    return sample


def write_examples(examples: Sequence[ColdStartExample], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(e.to_json()) + "\n" for e in examples), "utf-8")
    tmp.replace(path)


def read_examples(path: Path) -> list[ColdStartExample]:
    return [
        ColdStartExample(**json.loads(line))
        for line in path.read_text("utf-8").splitlines()
        if line.strip()
    ]


def fine_tune(
    policy: Any,
    examples: Sequence[ColdStartExample],
    prompt_of: Callable[[str], Any],
    *,
    seed: int,
    log_path: Path,
    reporter: TrainReporter,
) -> list[dict[str, float]]:
    """Supervised fine-tuning on the examples' think-format completions (loss on the
    completion and its end-of-turn token only); returns the per-step log it also writes."""
    import torch

    from reasoncli.train.prompts import prompt_ids

    if not examples:
        raise ModelError("cold start: no examples to fine-tune on")
    tokenizer, model = policy.tokenizer, policy.model
    eos = tokenizer.eos_token_id
    rows = []
    for e in examples:
        prompt = prompt_ids(tokenizer, prompt_of(e.question))
        completion = tokenizer(e.completion, add_special_tokens=False)["input_ids"]
        rows.append((prompt + completion + [eos], len(prompt)))
    torch.manual_seed(seed)
    rng = random.Random(seed)
    steps = EPOCHS * math.ceil(len(rows) / BATCH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / (WARMUP_STEPS + 1))
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    log: list[dict[str, float]] = []
    model.train()
    step = 0
    with log_path.open("w", encoding="utf-8") as out:
        for _ in range(EPOCHS):
            order = list(range(len(rows)))
            rng.shuffle(order)
            for start in range(0, len(order), BATCH):
                batch = [rows[i] for i in order[start : start + BATCH]]
                width = max(len(ids) for ids, _ in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                labels = torch.full((len(batch), width), -100, dtype=torch.long)
                for j, (seq, prompt_len) in enumerate(batch):
                    ids[j, : len(seq)] = torch.tensor(seq)
                    mask[j, : len(seq)] = 1
                    labels[j, prompt_len : len(seq)] = torch.tensor(seq[prompt_len:])
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                row = {"step": step, "steps": steps, "loss": round(float(loss.item()), 6)}
                log.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
                reporter.status(f"cold start: fine-tuning step {step}/{steps}, loss {row['loss']}")
    model.eval()
    return log
