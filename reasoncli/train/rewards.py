"""TRL reward functions built on `reasoncli.rewards`, the code inference-time GRPO scores with.

Training and `--expect`/`reason rollouts` must agree on what a good answer is, so nothing is
re-implemented here: this only adapts TRL's calling convention (completions as strings or chat
messages, extra dataset columns as keyword lists, token ids to tell EOS from truncation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from reasoncli.rewards import FORMAT_WEIGHT, BranchReward, score_branch
from reasoncli.strategies.parallel import branch_answer

__all__ = ["REWARD_WEIGHTS", "STOP_WEIGHT", "RewardAdapter", "completion_text", "finish_reason"]

STOP_WEIGHT = 0.25
"""Small enough that a right answer (1.0) outranks any wrong one (format 0.5 + stop 0.25), large
enough that stopping pays: without it a probe learned to fill its whole token budget."""
REWARD_WEIGHTS = {"accuracy": 1.0, "format": FORMAT_WEIGHT, "stop": STOP_WEIGHT}

RewardFunc = Callable[..., list[float]]


def completion_text(completion: Any) -> str:
    """The generated text: TRL passes a string, or a list of chat messages for chat prompts."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, Sequence):
        return "".join(completion_text(part) for part in completion)
    return str(completion)


def finish_reason(ids: Sequence[int] | None, eos_ids: frozenset[int]) -> str:
    """ "eos" when the completion ends on an end-of-generation token (TRL keeps it), else
    "length": TRL cut it at the token limit."""
    return "eos" if ids and ids[-1] in eos_ids else "length"


class RewardAdapter:
    """Scores completions once and serves each reward component as a TRL reward function."""

    def __init__(
        self,
        eos_ids: Sequence[int],
        *,
        think_tags: tuple[str, str] | None = None,
        stop: Sequence[str] = (),
    ) -> None:
        self.eos_ids = frozenset(eos_ids)
        self.think_tags = think_tags
        self.stop = tuple(stop)
        # TRL calls each function on the same batch: score a completion once, not three times.
        self.score = lru_cache(maxsize=4096)(self._score)

    def _score(self, text: str, reason: str, expected: str, multiple_choice: bool) -> BranchReward:
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:  # llama.cpp ends a branch at a stop string; score what it would have kept
            text, reason = text[:cut], "stop"
        answer = branch_answer(text, self.think_tags, multiple_choice)
        return score_branch(text, answer, reason, expected, self.think_tags)

    def score_batch(
        self,
        completions: Sequence[Any],
        answer: Sequence[str],
        completion_ids: Sequence[Sequence[int]] | None = None,
        multiple_choice: Sequence[bool] | None = None,
    ) -> list[BranchReward]:
        ids: Sequence[Sequence[int] | None] = completion_ids or [None] * len(completions)
        choice = multiple_choice or [False] * len(completions)
        return [
            self.score(completion_text(c), finish_reason(i, self.eos_ids), str(a), bool(m))
            for c, a, i, m in zip(completions, answer, ids, choice, strict=True)
        ]

    def functions(self) -> list[RewardFunc]:
        """One function per component, in REWARD_WEIGHTS order; TRL logs each by its name."""
        return [self._component(name) for name in REWARD_WEIGHTS]

    def _component(self, name: str) -> RewardFunc:
        def reward(
            completions: Sequence[Any],
            answer: Sequence[str],
            completion_ids: Sequence[Sequence[int]] | None = None,
            multiple_choice: Sequence[bool] | None = None,
            **_: Any,
        ) -> list[float]:
            scored = self.score_batch(completions, answer, completion_ids, multiple_choice)
            return [float(getattr(r, name)) for r in scored]

        reward.__name__ = reward.__qualname__ = name
        return reward
