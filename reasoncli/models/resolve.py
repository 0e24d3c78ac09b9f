"""What a user's model argument means: the default model, a registry name or alias, an
`owner/repo:QUANT` that was pulled, or a bare .gguf path (an ad-hoc entry from its header).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli.errors import ModelError
from reasoncli.models.catalog import Catalog
from reasoncli.models.filenames import quant_from_filename
from reasoncli.models.gguf_file import GGUFInfo, read_gguf_info
from reasoncli.models.install import resolve_spec
from reasoncli.models.schema import ModelSpec

ADHOC_MAX_CTX = 8192
"""Ad-hoc GGUFs get min(trained context, this): a 128k-context file would otherwise reserve
gigabytes of KV cache before the user asked for any of it."""
_THINK_HINTS = ("<think>", "</think>")


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
