"""Check the exported GGUF against the model that was trained: same prompt, greedy decoding.

An export bug (a missed permutation, a wrong tensor) shows up as llama.cpp and transformers
choosing different tokens; a correct Q8_0 export picks the same tokens on an ordinary prompt.
The prompt is also tokenized the way `reason ask` does it, to catch a template mismatch between
training and inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasoncli.models.resolve import ResolvedModel
from reasoncli.models.schema import ModelSpec
from reasoncli.train.prompts import prompt_ids, training_prompt

__all__ = ["CHECK_TOKENS", "NEAR_TIE", "GreedyCheck", "gguf_greedy", "greedy_check", "hf_greedy"]

CHECK_TOKENS = 16
NEAR_TIE = 0.1


@dataclass(frozen=True)
class GreedyCheck:
    tokens: int
    """How many tokens transformers generated (the comparison length)."""
    matching: int
    """Leading tokens on which llama.cpp agrees."""
    prompt_tokens_match: bool
    """`reason ask` tokenizes the prompt exactly as training did."""
    divergence_gap: float | None = None
    """Where the two first disagree: how far (in transformers' logits) the trained model's
    choice led llama.cpp's. A gap near 0 is a near tie that quantization noise can flip; a
    large one means the export differs from the trained model."""

    @property
    def equal(self) -> bool:
        return self.matching == self.tokens

    @property
    def near_tie(self) -> bool:
        return self.divergence_gap is not None and self.divergence_gap < NEAR_TIE

    def to_json(self) -> dict[str, Any]:
        gap = self.divergence_gap
        return {
            **asdict(self),
            "divergence_gap": round(gap, 4) if gap is not None else None,
            "equal": self.equal,
            "near_tie": self.near_tie,
        }


def hf_greedy(model: Any, ids: list[int], n: int, eos_ids: set[int]) -> list[int]:
    import torch

    model.eval()
    with torch.no_grad():
        inputs = torch.tensor([ids], device=model.device)
        out = model.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            do_sample=False,
            max_new_tokens=n,
            eos_token_id=sorted(eos_ids),
            pad_token_id=min(eos_ids),
            temperature=None,
            top_p=None,
            top_k=None,
        )
    return [int(t) for t in out[0, len(ids) :].tolist()]


def gguf_greedy(path: Path, ids: list[int], n: int, eos_ids: set[int]) -> list[int]:
    """Greedy tokens from llama.cpp on CPU, fed the same prompt ids."""
    from reasoncli.engine.model import load_llama_cpp

    llama_cpp = load_llama_cpp()
    llm = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=len(ids) + n + 8,
        n_gpu_layers=0,
        logits_all=False,
        verbose=False,
    )
    out: list[int] = []
    try:
        for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0):
            out.append(int(token))
            if token in eos_ids or len(out) >= n:
                break
    finally:
        llm.close()
    return out


def _inference_prompt_ids(gguf: Path, spec: ModelSpec, question: str) -> list[int]:
    from reasoncli.session import Session

    session = Session.load(ResolvedModel(spec, gguf))
    try:
        return session.prompt_tokens(session.prompt_text(question))
    finally:
        session.close()


def greedy_check(
    policy: Any, gguf: Path, spec: ModelSpec, question: str, *, chat: bool, eos_ids: set[int]
) -> GreedyCheck:
    """Compare CHECK_TOKENS greedy tokens of the trained model and its export on `question`."""
    ids = prompt_ids(policy.tokenizer, training_prompt(question, spec, chat))
    expected = hf_greedy(policy.model, ids, CHECK_TOKENS, eos_ids)
    got = gguf_greedy(gguf, ids, len(expected), eos_ids)
    matching = next(
        (i for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b),
        min(len(expected), len(got)),
    )
    gap = None
    if matching < min(len(expected), len(got)):
        gap = _logit_gap(policy.model, ids + expected[:matching], expected[matching], got[matching])
    return GreedyCheck(
        tokens=len(expected),
        matching=matching,
        prompt_tokens_match=_inference_prompt_ids(gguf, spec, question) == ids,
        divergence_gap=gap,
    )


def _logit_gap(model: Any, ids: list[int], chosen: int, other: int) -> float:
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.device), logits_to_keep=1).logits[0, -1]
    return float(logits[chosen] - logits[other])
