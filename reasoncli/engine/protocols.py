"""What a strategy needs from a model session and from a branch engine, and the values that pass
between them.

Three pairs implement the two protocols:

- a model loaded here: `session.Session` and `engine.branches.BranchEngine`;
- the server's model, one view per request: `serve.session.RequestSession` and
  `engine.pool.PooledEngine` (a `BranchEngine` on the shared context);
- a model behind an OpenAI-compatible server: `remote.session.RemoteSession` and
  `remote.engine.RemoteEngine`.

Strategies, the bench and the runner are typed against `ModelSession` and `Engine`, so mypy
checks every implementation against what they use.

A session renders a question into a `Prompt`: text, or `ChatMessages` for a remote model whose
server applies its own chat template. It encodes that into `PromptTokens`: token ids here, or a
`RemotePrompt` that a server will tokenize. A strategy only measures `PromptTokens` (`len`) and
hands them back to the session that made them, to open an engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reasoncli.engine.branch_state import Branch, TokenEvent
from reasoncli.engine.sampling import Sampling
from reasoncli.prompting import PromptStyle


@dataclass
class SessionOptions:
    """How a model is loaded and run here (a remote session keeps the defaults)."""

    threads: int | None = None
    gpu_layers: int | None = None
    flash_attn: bool = True
    verbose: bool = False


@dataclass(frozen=True)
class ChatMessages:
    """A prompt that the server renders with its own chat template."""

    messages: tuple[dict[str, str], ...]

    def __str__(self) -> str:
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages)


Prompt = str | ChatMessages


@dataclass(frozen=True)
class RemotePrompt:
    """A prompt as the server will see it: text (completions) or messages (chat)."""

    text: str | None
    messages: tuple[dict[str, str], ...] | None
    n_tokens: int
    estimated: bool = False

    def __len__(self) -> int:
        return self.n_tokens


PromptTokens = list[int] | RemotePrompt


def prompt_text_only(prompt: Prompt) -> str:
    """The text of a prompt that a session rendered itself (never `ChatMessages`)."""
    if isinstance(prompt, ChatMessages):
        raise TypeError("a model prompted here takes rendered text, not chat messages")
    return prompt


def token_ids(prompt: PromptTokens) -> list[int]:
    """The token ids of a prompt that a local session encoded (never a `RemotePrompt`)."""
    if isinstance(prompt, RemotePrompt):
        raise TypeError("a remote prompt cannot open an engine on a local model")
    return prompt


def server_prompt(prompt: PromptTokens) -> RemotePrompt:
    """The prompt of a remote session (never token ids encoded here)."""
    if not isinstance(prompt, RemotePrompt):
        raise TypeError("token ids encoded here cannot open an engine on a remote model")
    return prompt


@dataclass(frozen=True)
class EngineSize:
    """What one engine must hold: a strategy asks for it, and every session kind sizes its
    engine (context plan, pool slots, remote requests) from this one value."""

    max_branches: int
    max_tokens: int
    """New tokens per branch."""
    slack_tokens: int = 64
    """Room for text a strategy forces into a branch (Wait, a verifier's suffix)."""
    logprobs: int = 0
    """Top logprobs kept per sampled token (0: none)."""


class StrategyTraits(Protocol):
    """What a session checks about a strategy before it runs (`strategies.base.StrategyInfo`)."""

    @property
    def name(self) -> str: ...

    @property
    def continues(self) -> bool:
        """Forks branches or appends text to them."""
        ...


class Engine(Protocol):
    """Branches of one prompt, decoded together (see `engine.branches.BranchEngine`)."""

    @property
    def top_logprobs(self) -> int:
        """Alternatives recorded per token (0: no log-probabilities)."""
        ...

    @property
    def prompt_tokens_decoded(self) -> int:
        """Prompt tokens this process decoded (0 for a remote engine)."""
        ...

    @property
    def decode_calls(self) -> int:
        """`llama_decode` calls this engine made (0 for a remote engine)."""
        ...

    @property
    def errors(self) -> Mapping[int, str]:
        """Why a branch failed, by branch id (remote engines only)."""
        ...

    @property
    def branches(self) -> list[Branch]: ...

    @property
    def live(self) -> list[Branch]: ...

    @property
    def capacity(self) -> int:
        """How many more branches can be alive at once."""
        ...

    @property
    def in_use(self) -> int:
        """Branches holding a slot (alive, or finished but not released)."""
        ...

    def add_branch(
        self, sampling: Sampling, max_tokens: int, stop: Iterable[str] = ()
    ) -> Branch: ...

    def fork(
        self,
        parent: Branch,
        sampling: Sampling | None = None,
        max_tokens: int | None = None,
        stop: Iterable[str] | None = None,
    ) -> Branch: ...

    def inject(
        self,
        branch: Branch,
        text: str,
        *,
        max_tokens: int | None = None,
        stop: Iterable[str] | None = None,
    ) -> list[int]: ...

    def finish(self, branch: Branch, reason: str = "stopped") -> None: ...

    def release(self, branch: Branch) -> None: ...

    def step(self) -> list[TokenEvent]: ...

    def run(self) -> Iterable[list[TokenEvent]]: ...

    def request_counts(self) -> dict[str, int] | None:
        """Requests sent, retried and failed (a remote engine); None for one that sends none."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


class ModelSession(Protocol):
    """A model opened once for any number of strategy runs (see `session.Session`)."""

    @property
    def name(self) -> str: ...

    @property
    def sampling(self) -> Sampling:
        """The model's default sampling (models.yaml)."""
        ...

    @property
    def stop(self) -> tuple[str, ...]: ...

    @property
    def think_tags(self) -> tuple[str, str] | None: ...

    @property
    def style(self) -> PromptStyle | None:
        """How prompts are rendered here; None: by the server's own chat template."""
        ...

    @property
    def options(self) -> SessionOptions: ...

    @property
    def load_s(self) -> float: ...

    skip_thinking: bool
    """Prompts close an empty thought (reasoning effort none, budget 0)."""

    def prompt_text(
        self, question: str, *, system: str | None = ..., assistant_prefix: str = ""
    ) -> Prompt: ...

    def prompt_tokens(self, prompt: Prompt) -> PromptTokens: ...

    def open_engine(self, prompt_tokens: PromptTokens, size: EngineSize) -> Engine:
        """An engine of `size`, with the prompt already decoded once."""
        ...

    def check_strategy(self, info: StrategyTraits) -> None:
        """Refuse a strategy this model cannot run (UsageError)."""
        ...

    def pass_thinking_budget(self, tokens: int | None) -> None:
        """A thinking budget for a server that applies it; `reason` forces it elsewhere."""
        ...

    def backend_info(self) -> dict[str, object]:
        """For `--json`: where the run's tokens were decoded."""
        ...

    def weights_path(self) -> Path | None:
        """The GGUF file sampled from; None when the weights are a server's."""
        ...

    def close(self) -> None: ...
