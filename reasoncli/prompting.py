"""Turn a question into prompt text: the model's chat template, or a raw few-shot completion."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

COT_SYSTEM = (
    "You are a careful problem solver. Reason step by step, then finish with a final line "
    "of the form 'The answer is X.' where X is the final answer."
)


@dataclass(frozen=True)
class PromptStyle:
    """What prompting needs to know about a model (a view of its catalog entry)."""

    mode: str  # "chat" | "completion"
    chat_template: str | None = None
    prompt_template: str | None = None  # completion mode; contains {question}


def render_prompt(
    style: PromptStyle,
    question: str,
    *,
    system: str | None = COT_SYSTEM,
    bos: str = "",
    eos: str = "",
    assistant_prefix: str = "",
) -> str:
    """Prompt text ending where the model should start writing its reasoning."""
    if style.mode == "completion" or not style.chat_template:
        template = (
            style.prompt_template or "Question: {question}\nAnswer: Let's think step by step."
        )
        return template.replace("{question}", question) + assistant_prefix
    return render_chat(style.chat_template, question, system=system, bos=bos, eos=eos) + (
        assistant_prefix
    )


def render_chat(
    template: str, question: str, *, system: str | None, bos: str = "", eos: str = ""
) -> str:
    """Render a GGUF Jinja chat template with an assistant turn opened."""
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": question})
    return render_messages(template, messages, bos=bos, eos=eos)


def render_messages(
    template: str, messages: list[dict[str, str]], *, bos: str = "", eos: str = ""
) -> str:
    """A whole conversation through the chat template (sandboxed Jinja), assistant turn open."""
    return _formatter(template, bos, eos)(messages=messages).prompt  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def _formatter(template: str, bos: str, eos: str) -> Any:
    """The template compiled once, not for every prompt (1.5 ms each, against 0.02 ms to
    render; a served run renders twice). Rendering keeps no state, so threads may share it."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(
        template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True
    )
