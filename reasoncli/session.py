"""A loaded model plus everything strategies need to open branch engines on it.

Strategies ask a `Session` for prompt tokens and for an engine sized to their request; they do
not know about catalogs, files or llama.cpp parameters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reasoncli.engine.branches import BranchEngine
from reasoncli.engine.model import LlamaModel, ModelLoadOptions
from reasoncli.engine.protocols import (
    EngineSize,
    Prompt,
    PromptTokens,
    SessionOptions,
    StrategyTraits,
    prompt_text_only,
    token_ids,
)
from reasoncli.engine.sampling import Sampling
from reasoncli.engine.sizing import plan_for_model
from reasoncli.prompting import COT_SYSTEM, PromptStyle, render_prompt
from reasoncli.reasoning import skip_thinking, template_think_tags

if TYPE_CHECKING:
    from reasoncli.models.resolve import ResolvedModel

__all__ = ["Session", "SessionOptions"]


@dataclass
class Session:
    """One model, loaded once, serving any number of strategy runs (an `engine.protocols.
    ModelSession`)."""

    name: str
    model: LlamaModel
    style: PromptStyle
    sampling: Sampling
    stop: tuple[str, ...] = ()
    think_tags: tuple[str, str] | None = None
    options: SessionOptions = field(default_factory=SessionOptions)
    load_s: float = 0.0
    effort_budgets: dict[str, int] = field(default_factory=dict)  # models.yaml reasoning_effort
    skip_thinking: bool = False  # prompts close an empty thought (effort none, budget 0)

    @classmethod
    def load(cls, resolved: ResolvedModel, options: SessionOptions | None = None) -> Session:
        """Load a `models.resolve.ResolvedModel` (spec + path)."""
        options = options or SessionOptions()
        spec = resolved.spec
        t0 = time.perf_counter()
        model = LlamaModel(
            Path(resolved.path),
            ModelLoadOptions(gpu_layers=options.gpu_layers, verbose=options.verbose),
        )
        sampling = Sampling.from_catalog(spec.sampling)
        chat_template = spec.chat_template or (model.chat_template if spec.mode == "chat" else None)
        style = PromptStyle(
            mode=spec.mode, chat_template=chat_template, prompt_template=spec.prompt_template
        )
        tags = tuple(spec.think_tags) if spec.think_tags else template_think_tags(chat_template)
        effort = spec.reasoning_effort
        return cls(
            name=spec.name,
            model=model,
            style=style,
            sampling=sampling,
            stop=tuple(spec.stop or ()),
            think_tags=tags,  # type: ignore[arg-type]
            options=options,
            load_s=time.perf_counter() - t0,
            effort_budgets=effort.budgets() if effort else {},
        )

    def prompt_text(
        self, question: str, *, system: str | None = COT_SYSTEM, assistant_prefix: str = ""
    ) -> str:
        prompt = render_prompt(
            self.style, question, system=system, bos=self.model.bos_text, eos=self.model.eos_text
        )
        return self.open_answer(prompt) + assistant_prefix

    def open_answer(self, prompt: str) -> str:
        """The rendered prompt, with an empty thought closed when thinking is skipped."""
        if self.skip_thinking and self.think_tags and self.style.mode == "chat":
            return skip_thinking(prompt, self.think_tags)
        return prompt

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        text = prompt_text_only(prompt)
        tokens = self.model.tokenize(text, add_special=True, parse_special=True)
        bos = self.model.lib.llama_vocab_bos(self.model.vocab)
        if len(tokens) > 1 and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]  # the template already wrote BOS
        return tokens

    def open_engine(self, prompt_tokens: PromptTokens, size: EngineSize) -> BranchEngine:
        """An engine of `size`, with the prompt already decoded once."""
        prompt_tokens = token_ids(prompt_tokens)
        model = self.model
        plan = plan_for_model(
            model,
            n_prompt=len(prompt_tokens),
            max_new_tokens=size.max_tokens,
            max_branches=size.max_branches,
            slack_tokens=size.slack_tokens,
        )
        engine = BranchEngine.open(
            model,
            plan,
            n_threads=self.options.threads,
            flash_attn=self.options.flash_attn,
            logprobs=size.logprobs,
        )
        return engine.with_prompt(prompt_tokens)

    def backend_info(self) -> dict[str, object]:
        """For `--json`: llama.cpp's backend, offloaded layers and threads."""
        from reasoncli.engine.backend import active_backend

        return active_backend(self.model, self.options.threads)

    def check_strategy(self, info: StrategyTraits) -> None:
        """A local model can run every strategy."""

    def pass_thinking_budget(self, tokens: int | None) -> None:
        """Nothing to pass: `reason` forces a local model's budget itself (think)."""

    def weights_path(self) -> Path:
        return self.model.path

    def close(self) -> None:
        self.model.close()
