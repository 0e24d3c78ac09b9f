"""A session on a remote server: the same face as a local `Session`, so strategies, the bench
and the renderers do not know which one they drive.

Where the prompt template comes from, in order: the models.yaml entry (`chat_template`, or
completion mode's `prompt_template`), the GGUF named by `template_from` or by `--model` when
it is also a local registry name or file, the server's `/props` (llama-server). Without
one, branches go through `/chat/completions` and the server applies its own template; then
strategies that continue a branch from a prefix (think, beam, dvts) are refused up front.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from reasoncli.engine.protocols import (
    ChatMessages,
    EngineSize,
    Prompt,
    PromptTokens,
    RemotePrompt,
    SessionOptions,
    StrategyTraits,
    server_prompt,
)
from reasoncli.engine.sampling import Sampling
from reasoncli.errors import ModelError, ProtocolError, ReasonError, UsageError
from reasoncli.prompting import COT_SYSTEM, PromptStyle, render_prompt
from reasoncli.reasoning import skip_thinking
from reasoncli.remote.backend import CHAT_THINK_TAGS, RemoteBackend
from reasoncli.remote.client import (
    DEFAULT_TIMEOUT_S,
    LLAMA_SERVER,
    RemoteConfig,
    check_server,
    fetch_props,
    llama_server_n,
)
from reasoncli.remote.engine import RemoteEngine

if TYPE_CHECKING:
    from reasoncli.models.catalog import Catalog
    from reasoncli.models.schema import ModelSpec

API_KEY_ENV = "REASON_API_KEY"


@dataclass(frozen=True)
class RemoteRequest:
    """What the command line says about the server; None means "from models.yaml or default"."""

    base_url: str | None = None
    model: str | None = None
    api_key_file: str | None = None
    max_concurrency: int | None = None
    timeout_s: float | None = None


@dataclass
class RemoteSession:
    """A model behind an OpenAI-compatible API, opened once for any number of runs."""

    name: str
    backend: RemoteBackend
    style: PromptStyle | None  # None: the server's own chat template, via /chat/completions
    sampling: Sampling
    stop: tuple[str, ...] = ()
    think_tags: tuple[str, str] | None = None
    options: SessionOptions = field(default_factory=SessionOptions)
    load_s: float = 0.0
    eos_text: str = ""
    skip_thinking: bool = False  # a rendered prompt closes an empty thought (think_tags known)

    def pass_thinking_budget(self, tokens: int | None) -> None:
        """Without a template `reason` cannot force a budget: the server is asked to."""
        if self.style is None:
            self.backend.thinking_budget = tokens

    def prompt_text(
        self, question: str, *, system: str | None = COT_SYSTEM, assistant_prefix: str = ""
    ) -> Prompt:
        if self.style is None:
            if assistant_prefix:
                raise UsageError("an assistant prefix needs a prompt template on a remote model")
            messages = [{"role": "system", "content": system}] if system else []
            return ChatMessages((*messages, {"role": "user", "content": question}))
        # BOS is left to the server, which adds it when it tokenizes the prompt.
        prompt = render_prompt(self.style, question, system=system, bos="", eos=self.eos_text)
        if self.skip_thinking and self.think_tags and self.style.mode == "chat":
            prompt = skip_thinking(prompt, self.think_tags)
        return prompt + assistant_prefix

    def prompt_tokens(self, prompt: Prompt) -> RemotePrompt:
        return self.backend.prompt(prompt)

    def open_engine(self, prompt_tokens: PromptTokens, size: EngineSize) -> RemoteEngine:
        """The server decodes: only the branch count and logprobs shape the requests."""
        prompt = server_prompt(prompt_tokens)
        return RemoteEngine(
            self.backend, prompt, max_branches=size.max_branches, logprobs=size.logprobs
        )

    def check_strategy(self, info: StrategyTraits) -> None:
        if self.style is None and info.continues:
            raise UsageError(
                f"{info.name} continues branches from a prefix, which needs {self.name!r}'s "
                "prompt template; set chat_template or template_from in its models.yaml entry"
            )

    def backend_info(self) -> dict[str, object]:
        config = self.backend.config
        return {
            "name": "openai",
            "base_url": config.root,
            "model": config.model,
            "api": "chat" if self.style is None else "completions",
            "max_concurrency": config.max_concurrency,
        }

    def weights_path(self) -> None:
        """The server's weights are not ours to read."""
        return None

    def close(self) -> None:
        self.backend.close()


def read_api_key(key_file: str | None, env: str = API_KEY_ENV) -> str | None:
    """The key from a file (first line) or the environment; never from the command line."""
    if key_file:
        path = Path(key_file).expanduser()
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"--api-key-file {path}: {exc.strerror or exc}") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise UsageError(f"--api-key-file {path} is empty")
        return key
    return os.environ.get(env) or None


def open_remote_session(request: RemoteRequest, catalog: Catalog) -> RemoteSession:
    """Check the server, pick the prompt template, and open the backend."""
    t0 = time.perf_counter()
    entry = catalog.find(request.model) if request.model else None
    ref = entry.source.openai if entry is not None else None
    local = None if ref is not None else _local_spec(request.model, catalog)
    base_url = request.base_url or (ref.base_url if ref else None)
    if not base_url:
        raise UsageError("the openai backend needs --base-url or REASON_BASE_URL")
    config = RemoteConfig(
        base_url=base_url,
        model=ref.model if ref else request.model,
        api_key=read_api_key(
            request.api_key_file or (ref.api_key_file if ref else None),
            ref.api_key_env if ref else API_KEY_ENV,
        ),
        timeout_s=request.timeout_s or (ref.timeout_s if ref else DEFAULT_TIMEOUT_S),
        max_concurrency=request.max_concurrency or (ref.max_concurrency if ref else 8),
    )
    server = check_server(config)
    if config.model is None:
        if len(server.models) != 1:
            raise UsageError(
                f"{config.root} serves {len(server.models)} models "
                f"({', '.join(server.models[:8])}); pick one with --model"
            )
        config = replace(config, model=server.models[0])
    llama = server.owned_by.lower() == LLAMA_SERVER  # one more GET, to llama-server only
    props = fetch_props(config) if llama else {}
    if props and not config.root.endswith("/v1"):
        # llama-server answers GET /models at its root too, but its /completions there is its
        # own API, not OpenAI's: every branch would fail on the first stream.
        raise ProtocolError(
            f"{config.root} is llama-server's root, where /completions is llama.cpp's own API; "
            f"--base-url should end in /v1 ({config.root}/v1)"
        )
    spec = entry if ref is not None else local
    template_from = ref.template_from if ref else (request.model if local else None)
    style, eos = _prompt_style(spec, template_from, config, catalog)
    think_tags = tuple(spec.think_tags) if spec and spec.think_tags else None
    if think_tags is None and style and style.chat_template and "<think>" in style.chat_template:
        think_tags = ("<think>", "</think>")
    if think_tags is None and style is None:
        think_tags = CHAT_THINK_TAGS  # what the engine puts around a thought sent apart
    sampling = Sampling.from_catalog(spec.sampling) if spec else Sampling()
    slots = llama_server_n(server, props) if llama else 0
    backend = RemoteBackend(
        config,
        chat_api=style is None,
        honours_n=server.honours_n or slots > 0,
        max_n=slots or None,
    )
    if think_tags is not None:
        backend.think_tags = think_tags
    return RemoteSession(
        name=spec.name if spec else str(config.model),
        backend=backend,
        style=style,
        sampling=sampling,
        stop=tuple(spec.stop or ()) if spec else (),
        think_tags=think_tags,  # type: ignore[arg-type]
        load_s=time.perf_counter() - t0,
        eos_text=eos,
    )


def _local_spec(name: str | None, catalog: Catalog) -> ModelSpec | None:
    """The registry entry or ad-hoc GGUF spec `name` also names here, for prompting; None if
    it is only a server-side id."""
    if not name:
        return None
    from reasoncli.models.resolve import resolve_model

    try:
        return resolve_model(name, catalog).spec
    except ModelError:
        return None


def _template_of(name: str, catalog: Catalog) -> str | None:
    """The chat template inside the GGUF that `name` resolves to, read from its header."""
    from reasoncli.models.gguf_file import read_gguf_info
    from reasoncli.models.resolve import resolve_model

    try:
        resolved = resolve_model(name, catalog)
        return resolved.spec.chat_template or read_gguf_info(resolved.path).chat_template
    except ReasonError as exc:
        raise ModelError(f"template_from {name!r}: {exc}") from None


def _prompt_style(
    spec: ModelSpec | None, template_from: str | None, config: RemoteConfig, catalog: Catalog
) -> tuple[PromptStyle | None, str]:
    """(style, EOS text) from the sources in the module docstring; (None, "") for chat API."""
    if spec is not None and spec.mode == "completion":
        return PromptStyle("completion", prompt_template=spec.prompt_template), ""
    template = spec.chat_template if spec is not None else None
    if template is None and template_from:
        template = _template_of(template_from, catalog)
    eos = ""
    if template is None:
        props = fetch_props(config)
        template = props.get("chat_template") or None
        eos = str(props.get("eos_token") or "")
    if not template:
        return None, ""
    wrapper = spec.prompt_template if spec is not None else None
    return PromptStyle("chat", chat_template=template, prompt_template=wrapper), eos
