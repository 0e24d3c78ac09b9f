"""Training prompts, made the way `reason ask` prompts the same model.

What the policy learns to continue must be what it is later asked at inference: the same system
message (`COT_SYSTEM`) and chat template for chat models, the same raw template otherwise.
"""

from __future__ import annotations

from typing import Any

from reasoncli.models.schema import ModelSpec
from reasoncli.prompting import COT_SYSTEM, PromptStyle, render_prompt

__all__ = ["is_chat", "prompt_ids", "training_prompt"]


def is_chat(spec: ModelSpec, gguf_chat_template: str | None) -> bool:
    return spec.mode == "chat" and bool(spec.chat_template or gguf_chat_template)


def training_prompt(question: str, spec: ModelSpec, chat: bool) -> Any:
    """Chat messages for chat models (TRL applies the template), else the rendered text."""
    if chat:
        return [
            {"role": "system", "content": COT_SYSTEM},
            {"role": "user", "content": question},
        ]
    style = PromptStyle(mode="completion", prompt_template=spec.prompt_template)
    return render_prompt(style, question)


def prompt_ids(tokenizer: Any, prompt: Any) -> list[int]:
    """Token ids of a prompt exactly as GRPOTrainer tokenizes it."""
    if isinstance(prompt, list):
        encoded = tokenizer.apply_chat_template(
            conversation=[prompt], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"][0])
    return list(tokenizer(text=[prompt])["input_ids"][0])
