"""Rule-based GRPO rewards (DeepSeek-R1, arXiv 2501.12948), shared by `--expect` and training.

Each branch earns an accuracy reward (its answer matches the expected one), a format reward
(it reasons, then states the answer in a form the extractor reads reliably; for a model that
thinks in tags, R1-Zero's: a closed `<think>` trace, then the answer) and a stop reward
(it ends on its own right after the answer). The stop reward exists because a GRPO probe here
learned to fill its whole token budget when nothing rewarded stopping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from reasoncli.answers import answers_equivalent, final_answer_span

__all__ = [
    "FORMAT_WEIGHT",
    "MIN_REASONING_CHARS",
    "STOP_FINISH_REASONS",
    "STOP_TAIL_CHARS",
    "BranchReward",
    "accuracy_reward",
    "format_reward",
    "group_advantages",
    "score_branch",
    "stop_reward",
    "think_format_reward",
]

# total = accuracy + FORMAT_WEIGHT * format: a right answer always outranks a pretty wrong one.
FORMAT_WEIGHT = 0.5
# Text before the answer statement shorter than this (non-blank chars) is not "reasoning".
MIN_REASONING_CHARS = 20
# At most this much text may follow the answer statement for the stop reward.
STOP_TAIL_CHARS = 40
STOP_FINISH_REASONS = frozenset({"stop", "eos"})

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)


def accuracy_reward(answer: str | None, expected: str) -> float:
    """1.0 when `answer` is equivalent to `expected`, else 0.0 (also for no answer)."""
    if answer is None or not answer.strip():
        return 0.0
    return 1.0 if answers_equivalent(answer, expected) else 0.0


def _has_reasoning(before: str) -> bool:
    """A non-empty `<think>` block, or enough text before the answer statement."""
    if any(block.strip() for block in _THINK_RE.findall(before)):
        return True
    visible = _THINK_RE.sub("", before)
    return len("".join(visible.split())) >= MIN_REASONING_CHARS


def format_reward(text: str) -> float:
    """1.0 for reasoning followed by a final answer, 0.5 for a bare final answer, else 0.0.

    A final answer is "The answer is X", "Final Answer: X" or `\\boxed{X}`; reasoning is a
    non-empty `<think>...</think>` block or at least MIN_REASONING_CHARS of other text before it.
    """
    span = final_answer_span(text)
    if span is None:
        return 0.0
    return 1.0 if _has_reasoning(text[: span[0]]) else 0.5


def think_format_reward(text: str, tags: tuple[str, str]) -> float:
    """R1-Zero's format reward for thinking models: 1.0 for a non-empty trace closed by the close
    tag and followed by a final answer, 0.5 for a closed trace without one, else 0.0.

    The open tag is optional at the start, as templates that open the thought (R1 distills,
    `reason train grpo --format think`) put it in the prompt; a second trace, or tags inside the
    answer, is 0.0.
    """
    open_tag, close_tag = tags
    body = text.lstrip()
    body = body[len(open_tag) :] if body.startswith(open_tag) else body
    if body.count(close_tag) != 1 or open_tag in body:
        return 0.0
    trace, answer = body.split(close_tag)
    if not trace.strip():
        return 0.0
    return 1.0 if final_answer_span(answer) is not None else 0.5


def stop_reward(text: str, finish_reason: str) -> float:
    """1.0 when the branch ended by itself shortly after stating its final answer, else 0.0."""
    if finish_reason not in STOP_FINISH_REASONS:
        return 0.0
    span = final_answer_span(text)
    if span is None:
        return 0.0
    return 1.0 if len(text[span[1] :].strip()) < STOP_TAIL_CHARS else 0.0


def group_advantages(rewards: Sequence[float]) -> list[float]:
    """GRPO advantages A_i = (r_i - mean) / std over one prompt's group (population std).

    All zeros when the group cannot tell branches apart (std 0, or a single branch); NaN rewards
    count as 0.
    """
    clean = [0.0 if math.isnan(r) else r for r in rewards]
    if len(clean) < 2:
        return [0.0] * len(clean)
    mean = math.fsum(clean) / len(clean)
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in clean) / len(clean))
    if std <= 1e-12:
        return [0.0] * len(clean)
    return [(r - mean) / std for r in clean]


@dataclass(frozen=True)
class BranchReward:
    """One branch's rewards; `total` = accuracy + FORMAT_WEIGHT * format (stop is reported)."""

    accuracy: float
    format: float
    stop: float
    total: float


def score_branch(
    text: str,
    answer: str | None,
    finish_reason: str,
    expected: str,
    think_tags: tuple[str, str] | None = None,
) -> BranchReward:
    """All rewards for one branch's `text`, its extracted `answer` and why it finished; a model
    that thinks in `think_tags` is held to the thinking format."""
    accuracy = accuracy_reward(answer, expected)
    fmt = think_format_reward(text, think_tags) if think_tags else format_reward(text)
    return BranchReward(
        accuracy=accuracy,
        format=fmt,
        stop=stop_reward(text, finish_reason),
        total=accuracy + FORMAT_WEIGHT * fmt,
    )
