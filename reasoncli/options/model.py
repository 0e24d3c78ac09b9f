"""The flags of every run that are not a strategy's: how the model samples
(`SamplingOverrides`) and how it is loaded or reached (`EngineFlags`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from reasoncli.options.declare import ENGINE, REMOTE, SAMPLING, Opt, Range, option

BACKENDS = ("auto", "local", "openai")


@dataclass(frozen=True)
class SamplingOverrides:
    """The sampling flags of every run; None keeps the value of the model's models.yaml entry."""

    temperature: float | None = option(
        None,
        Opt(
            "Temperature; 0 is greedy.",
            flags=("--temperature", "-t"),
            metavar="T",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, note="(0: greedy)"),
        ),
    )
    top_p: float | None = option(
        None,
        Opt(
            "Nucleus sampling, in (0, 1].",
            metavar="P",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, 1, low_open=True),
        ),
    )
    top_k: int | None = option(
        None,
        Opt(
            "Top-k; 0 turns it off.",
            metavar="K",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, note="(0: off)"),
            serve_max=1 << 20,
        ),
    )
    min_p: float | None = option(
        None,
        Opt(
            "Min-p, in [0, 1].",
            metavar="P",
            panel=SAMPLING,
            commands=("ask", "think"),
            range=Range(0, 1),
        ),
    )

    def given(self) -> dict[str, Any]:
        """The overrides that were given, for `dataclasses.replace(session.sampling, ...)`."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class EngineFlags:
    """How a run's model is loaded (llama.cpp) or reached (an OpenAI-compatible server)."""

    threads: int | None = option(
        None,
        Opt("CPU threads for llama.cpp.", panel=ENGINE, range=Range(1)),
    )
    gpu_layers: int | None = option(
        None,
        Opt(
            "Layers to offload (0: CPU only, -1: all); default all when a GPU backend exists.",
            panel=ENGINE,
            range=Range(-1, note="(-1: every layer)"),
        ),
    )
    flash_attn: bool = option(
        True,
        Opt("Flash attention.", flags=("--flash-attn/--no-flash-attn",), metavar="", panel=ENGINE),
    )
    verbose: bool = option(False, Opt("Show llama.cpp's own log.", metavar="", panel=ENGINE))
    backend: str = option(
        "auto",
        Opt(
            "auto (remote when a base URL or a remote models.yaml entry is given), local, openai.",
            metavar="auto|local|openai",
            panel=REMOTE,
            choices=BACKENDS,
        ),
    )
    base_url: str | None = option(
        None,
        Opt(
            "API root of llama-server, vLLM or SGLang, e.g. http://host:8000/v1.",
            metavar="URL",
            panel=REMOTE,
            envvar="REASON_BASE_URL",
        ),
    )
    api_key_file: str | None = option(
        None,
        Opt(
            "File holding the API key (else $REASON_API_KEY; never a flag).",
            metavar="FILE",
            panel=REMOTE,
            envvar="REASON_API_KEY_FILE",
        ),
    )
    max_concurrency: int | None = option(
        None, Opt("Requests in flight at once [8].", panel=REMOTE, range=Range(1))
    )
    timeout: float | None = option(
        None,
        Opt(
            "Seconds to wait for a server's next chunk before retrying [60].",
            metavar="SECONDS",
            panel=REMOTE,
            range=Range(0, low_open=True, note="seconds"),
        ),
    )
