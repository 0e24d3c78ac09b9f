"""The schema of a models.yaml entry (`ModelSpec`): strict pydantic models, so a typo'd field,
a quoted number or an ambiguous source is an error with a name rather than a silent default.

A new kind of model source starts here (a `Source` field), then `install.py` says where its
file is, or `packaged.py` if code has to produce it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reasoncli.models.packaged import RESOLVERS
from reasoncli.tune.policy import TunedPolicy

QUESTION = "{question}"
"""Placeholder in `prompt_template`; substituted with str.replace, so other braces are literal."""

GENERIC_COMPLETION_TEMPLATE = "Question: {question}\nAnswer: Let's think step by step."
"""Prompt for ad-hoc base models: no few-shot examples, since we know nothing about the model."""

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""Registry names and aliases."""


class _Schema(BaseModel):
    """Strict and closed: a typo'd field or a quoted number is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Sampling(_Schema):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(40, ge=0)
    min_p: float = Field(0.05, ge=0, le=1)
    repeat_penalty: float = Field(1.0, gt=0)


class ReasoningEffort(_Schema):
    """Thinking tokens per `reasoning_effort` (`none` is always no thinking); unset levels
    keep `reasoncli.reasoning.DEFAULT_EFFORT_BUDGETS`."""

    low: int | None = Field(None, gt=0)
    medium: int | None = Field(None, gt=0)
    high: int | None = Field(None, gt=0)

    def budgets(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class PackageRef(_Schema):
    """A file inside an installed distribution, `path` as `pip show -f DISTRIBUTION` lists it."""

    distribution: str = Field(min_length=1)
    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if os.path.isabs(v) or ".." in Path(v).parts:
            raise ValueError("must be relative to the distribution's install root")
        return v


REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
"""`owner/name` as the Hub spells repositories."""


def check_repo_id(repo: str) -> str:
    """`repo` if it is `owner/name`; ValueError otherwise. `.` and `..` are refused as parts
    because the pair also names a folder under the models directory."""
    if not REPO_RE.match(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"{repo!r} is not a repository id of the form owner/name")
    return repo


def check_repo_file(name: str) -> str:
    """`name` if it is a plain relative path inside a repository; ValueError otherwise.

    File names come from models.yaml and from the Hub's own listings, and both end up joined
    to the models directory, so anything that could climb out of it is refused up front."""
    bad = (
        not name
        or name.startswith(("/", "~"))
        or "\\" in name
        or re.match(r"^[A-Za-z]:", name) is not None
        or any(ord(c) < 32 for c in name)
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise ValueError(f"{name!r} is not a plain file path inside the repository")
    return name


class HfRef(_Schema):
    """A Hugging Face file; fetched only by `reason models pull`, never implicitly."""

    repo: str
    file: str = Field(min_length=1)
    revision: str | None = Field(default=None, min_length=1)
    """Branch, tag or commit to pull (default main); pulled entries record the commit."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Expected checksum: `pull` refuses a file that differs. Pulled entries record it."""

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return check_repo_id(v)

    @field_validator("file")
    @classmethod
    def _relative(cls, v: str) -> str:
        check_repo_file(v)
        return v


SOURCE_KINDS = ("package", "path", "hf", "resolver", "openai")


class OpenAIRef(_Schema):
    """A model served by an OpenAI-compatible server (llama-server, vLLM, SGLang)."""

    base_url: str = Field(pattern=r"^https?://")
    """The API root, ending in /v1."""
    model: str = Field(min_length=1)
    """The model id the server lists under GET /models."""
    api_key_env: str = "REASON_API_KEY"
    """The environment variable that holds the key (the key itself never goes in this file)."""
    api_key_file: str | None = None
    """Or a file whose first line is the key."""
    max_concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(60.0, gt=0, strict=False)
    template_from: str | None = None
    """A registry name or .gguf path whose chat template renders prompts for this model, so
    every strategy can continue branches from a prefix."""


class Source(_Schema):
    """Where the weights are: exactly one of the five fields."""

    package: PackageRef | None = None
    path: str | None = None
    hf: HfRef | None = None
    resolver: str | None = None
    openai: OpenAIRef | None = None

    @field_validator("resolver")
    @classmethod
    def _known_resolver(cls, v: str | None) -> str | None:
        if v is not None and v not in RESOLVERS:
            raise ValueError(f"unknown resolver {v!r}; known: {', '.join(sorted(RESOLVERS))}")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [k for k in SOURCE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            got = f" (got {', '.join(given)})" if given else ""
            raise ValueError(f"give exactly one of {', '.join(SOURCE_KINDS)}{got}")
        return self

    @property
    def kind(self) -> Literal["package", "path", "hf", "resolver", "openai"]:
        for k in SOURCE_KINDS:
            if getattr(self, k) is not None:
                return k  # type: ignore[return-value]
        raise AssertionError("validated Source has one field set")

    def describe(self) -> str:
        """One line for tables and `models show`."""
        if self.package is not None:
            return f"package {self.package.distribution}: {self.package.path}"
        if self.hf is not None:
            at = f" @ {self.hf.revision[:12]}" if self.hf.revision else ""
            return f"hf {self.hf.repo}: {self.hf.file}{at}"
        if self.resolver is not None:
            return f"resolver {self.resolver}"
        if self.openai is not None:
            return f"openai {self.openai.base_url} ({self.openai.model})"
        return f"path {self.path}"


_Name = Annotated[str, Field(pattern=NAME_RE, max_length=100)]
_NonEmpty = Annotated[str, Field(min_length=1)]


class ModelSpec(_Schema):
    """One registry entry: everything needed to prompt a model well, minus the weights."""

    name: _Name
    aliases: tuple[_Name, ...] = Field((), strict=False)
    description: str = ""
    source: Source
    n_ctx: int | None = Field(None, gt=0)
    """Context to allocate; None means the GGUF's trained context length."""
    mode: Literal["chat", "completion"] = "chat"
    chat_template: str | None = None
    """Overrides the GGUF's `tokenizer.chat_template` (chat mode only)."""
    prompt_template: str | None = None
    """Contains `{question}`. Completion mode: the whole raw prompt (defaults to a generic one).
    Chat mode: optional wrapper for the user message."""
    stop: tuple[_NonEmpty, ...] = Field((), strict=False)
    think_tags: tuple[_NonEmpty, _NonEmpty] | None = Field(None, strict=False)
    """Unset: `<think>`/`</think>` when the chat template writes both."""
    reasoning_effort: ReasoningEffort | None = None
    sampling: Sampling = Sampling()
    extra: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    """The `reasoncli[EXTRA]` pip extra that installs this model's package."""
    download_size: int | None = Field(None, gt=0)
    """Approximate GGUF size in bytes, so listings can say what a pull will cost."""
    verified: bool = True
    """False when the repo, file, size or settings come from model cards and were not checked
    against the Hub; `models list` flags such entries."""
    policy: TunedPolicy | None = None
    """What `auto` runs per difficulty bin and budget, as `reason tune` wrote it."""

    @model_validator(mode="before")
    @classmethod
    def _default_completion_prompt(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "completion":
            return {"prompt_template": GENERIC_COMPLETION_TEMPLATE, **data}
        return data

    @field_validator("think_tags", mode="before")
    @classmethod
    def _tag_pair(cls, v: Any) -> Any:
        if isinstance(v, list | tuple) and len(v) != 2:
            raise ValueError("should be two strings: [open, close]")
        return v

    @field_validator("prompt_template")
    @classmethod
    def _has_question(cls, v: str | None) -> str | None:
        if v is not None and QUESTION not in v:
            raise ValueError(f"must contain {QUESTION}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.mode == "completion" and self.chat_template is not None:
            raise ValueError("chat_template applies only to mode: chat")
        if self.name in self.aliases:
            raise ValueError(f"alias {self.name!r} repeats the entry name")
        if len(set(self.aliases)) != len(self.aliases):
            raise ValueError("aliases repeat")
        if self.think_tags is not None and self.think_tags[0] == self.think_tags[1]:
            raise ValueError("think_tags must be two different strings [open, close]")
        return self

    def render_prompt(self, question: str) -> str:
        """The prompt text for `question` (str.replace, so braces in examples stay literal)."""
        template = self.prompt_template or QUESTION
        return template.replace(QUESTION, question)
