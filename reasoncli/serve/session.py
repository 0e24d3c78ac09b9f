"""The per-request view of the server's one loaded model.

A `RequestSession` is the loaded `Session` with two things changed for one request: engines come
from the shared context's pool (so requests batch together), and prompts render the request's
own conversation. Strategies see an ordinary `Session`, so they run unchanged.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

from reasoncli.engine.pool import PooledEngine, SharedContext, TokenBudget
from reasoncli.engine.protocols import EngineSize, PromptTokens, token_ids
from reasoncli.prompting import COT_SYSTEM, render_messages, render_prompt
from reasoncli.session import Session


@dataclass
class RequestSession(Session):
    shared: SharedContext = field(kw_only=True)
    history: list[dict[str, str]] = field(default_factory=list)
    budget: TokenBudget | None = None  # the request's generated-token ceiling
    cancelled: threading.Event | None = None  # set when the request is cancelled
    # Prompt tokens whose KV came from the prompt cache, over the run's engines: usage's
    # prompt_tokens_details.cached_tokens.
    prompt_tokens_cached: int = field(default=0, init=False)

    @classmethod
    def of(
        cls,
        base: Session,
        shared: SharedContext,
        history: list[dict[str, str]] | None = None,
        budget: TokenBudget | None = None,
        skip_thinking: bool = False,
        cancelled: threading.Event | None = None,
    ) -> RequestSession:
        values = {f.name: getattr(base, f.name) for f in fields(Session)}
        values["skip_thinking"] = skip_thinking
        return cls(
            **values,
            shared=shared,
            history=list(history or []),
            budget=budget,
            cancelled=cancelled,
        )

    def prompt_text(
        self, question: str, *, system: str | None = COT_SYSTEM, assistant_prefix: str = ""
    ) -> str:
        if not self.history:
            return super().prompt_text(question, system=system, assistant_prefix=assistant_prefix)
        systems = [m["content"] for m in self.history if m["role"] == "system"]
        turns = [m for m in self.history if m["role"] != "system"]
        system_text = "\n\n".join(s for s in [system, *systems] if s)
        style = self.style
        if style.mode == "completion" or not style.chat_template:
            lines = [f"{m['role'].capitalize()}: {m['content']}" for m in turns]
            context = "\n".join([*(s for s in systems if s), *lines])
            body = render_prompt(style, question, system=None, assistant_prefix=assistant_prefix)
            return f"{context}\n{body}" if context else body
        messages = [{"role": "system", "content": system_text}] if system_text else []
        messages += [*turns, {"role": "user", "content": question}]
        prompt = render_messages(
            style.chat_template, messages, bos=self.model.bos_text, eos=self.model.eos_text
        )
        return self.open_answer(prompt) + assistant_prefix

    def open_engine(self, prompt_tokens: PromptTokens, size: EngineSize) -> PooledEngine:
        engine = self.shared.open_engine(
            token_ids(prompt_tokens),
            max_branches=size.max_branches,
            max_tokens=size.max_tokens,
            slack_tokens=size.slack_tokens,
            logprobs=size.logprobs,
            budget=self.budget,
            cancelled=self.cancelled,
            owner=self,  # its engines are one run's (a nested one does not queue behind others)
        )
        self.prompt_tokens_cached += engine.prompt_tokens_cached
        return engine

    def close(self) -> None:
        """The model belongs to the server, not to the request."""
