"""Register a trained model in the user's models.yaml, keeping the rest of the file as written.

The user's file is theirs: entries, comments and order stay put. A new entry is appended as text
after the last one under `models:`; replacing one (`--force`) swaps only that entry's lines. Only
a file PyYAML must rewrite (a flow-style mapping) loses its comments. The result is validated as
a catalog before it replaces the original, atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from reasoncli.errors import CatalogError, UsageError
from reasoncli.models.catalog import Catalog, load_catalog, user_catalog_path
from reasoncli.models.schema import ModelSpec

__all__ = ["check_out_name", "registry_path", "trained_spec", "write_entry"]

HEADER = "# Models of your own; `reason models list` shows them with the shipped ones.\n"
_PROMPTING = ("n_ctx", "mode", "chat_template", "prompt_template", "stop", "think_tags", "sampling")


def registry_path() -> Path:
    """Where entries go: `$REASON_MODELS`, else the XDG config file (created if missing)."""
    found = user_catalog_path()
    if found is not None:
        return found
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "reason" / "models.yaml"


def check_out_name(name: str, catalog: Catalog, *, force: bool, run_dir: Path) -> None:
    """Refuse a name already taken, unless --force or the entry is this run's own export."""
    spec = catalog.find(name)
    if spec is None:
        return
    if spec.name.casefold() != name.casefold():
        raise UsageError(f"--out {name!r} is an alias of model {spec.name!r}; choose another name")
    path = spec.source.path
    ours = path is not None and Path(path).expanduser().absolute().parent == run_dir
    if not (force or ours):
        raise UsageError(
            f"model {name!r} already exists ({catalog.origin(spec.name)}); choose another --out "
            "or replace it with --force"
        )


def trained_spec(name: str, source: ModelSpec, gguf: Path, description: str) -> ModelSpec:
    """The new entry: the export as a path source, prompted like the model it was trained from."""
    data = source.model_dump(mode="json")
    fields = {k: data[k] for k in _PROMPTING if data.get(k) is not None}
    return ModelSpec.model_validate(
        {**fields, "name": name, "description": description, "source": {"path": str(gguf)}}
    )


def _entry_yaml(spec: ModelSpec, indent: str) -> str:
    entry = spec.model_dump(mode="json", exclude_defaults=True, exclude={"name"})
    entry["source"] = spec.source.model_dump(mode="json", exclude_none=True)
    # Say these explicitly: whoever edits the entry should not need to know the defaults.
    entry["mode"] = spec.mode
    entry["sampling"] = spec.sampling.model_dump(mode="json")
    body = yaml.safe_dump({spec.name: entry}, sort_keys=False, allow_unicode=True, width=1000)
    return "".join(indent + line + "\n" for line in body.splitlines())


_MODELS_RE = re.compile(r"^models:[ \t]*(#.*)?$", re.MULTILINE)
_EMPTY_MODELS_RE = re.compile(r"^models:[ \t]*\{[ \t]*\}[ \t]*(#.*)?$", re.MULTILINE)


def _child_indent(lines: list[str], start: int) -> str:
    """The indentation of the entries under `models:` (two spaces if there are none)."""
    for line in lines[start:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = line[: len(line) - len(line.lstrip())]
        return indent if indent else "  "
    return "  "


def _entry_span(lines: list[str], start: int, indent: str, name: str) -> tuple[int, int] | None:
    """Line range of entry `name` under `models:` (from the line after `models:`)."""
    key = re.compile(rf"^{re.escape(indent)}(['\"]?){re.escape(name)}\1:(\s|$)")
    for i in range(start, len(lines)):
        if key.match(lines[i]):
            end = i + 1
            while end < len(lines):
                line = lines[end]
                stripped = line.strip()
                depth = len(line) - len(line.lstrip())
                if stripped and not stripped.startswith("#") and depth <= len(indent):
                    break
                end += 1
            while end > i + 1 and not lines[end - 1].strip():
                end -= 1  # leave blank lines between entries where they were
            return i, end
        line = lines[i]
        if line.strip() and not line.startswith((" ", "\t", "#")):
            return None  # the next top-level key: the models mapping ended
    return None


def _edited_text(text: str, spec: ModelSpec) -> str:
    empty = _EMPTY_MODELS_RE.search(text)
    if empty is not None:  # `models: {}`: the new entry becomes the first of a block mapping
        comment = f"  {empty.group(1)}" if empty.group(1) else ""
        block = f"models:{comment}\n" + _entry_yaml(spec, "  ").rstrip("\n")
        return text[: empty.start()] + block + text[empty.end() :]
    match = _MODELS_RE.search(text)
    doc = yaml.safe_load(text) if text.strip() else None
    models = doc.get("models") if isinstance(doc, dict) else None
    if match is None or (models is not None and not isinstance(models, dict)) or models == {}:
        return _rewritten(doc, spec)
    lines = text.splitlines(keepends=True)
    start = text[: match.end()].count("\n") + 1
    indent = _child_indent(lines, start)
    block = _entry_yaml(spec, indent)
    span = _entry_span(lines, start, indent, spec.name)
    if span is not None:
        lines[span[0] : span[1]] = [block]
        return "".join(lines)
    end = _mapping_end(lines, start)
    if end > start:  # after the last entry, a blank line apart as entries usually are
        block = "\n" + block
        if not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
    lines.insert(end, block)
    return "".join(lines)


def _mapping_end(lines: list[str], start: int) -> int:
    """The index just after the last indented line of the `models:` mapping."""
    end = start
    for i in range(start, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if not line[0].isspace():
            break  # a top-level key or a column-0 comment: the mapping is over
        end = i + 1
    return end


def _rewritten(doc: Any, spec: ModelSpec) -> str:
    """Fallback for files without a block-style `models:` mapping."""
    data = dict(doc) if isinstance(doc, dict) else {}
    models = dict(data.get("models") or {})
    entry = yaml.safe_load(_entry_yaml(spec, ""))
    models.update(entry)
    data["models"] = models
    return HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def write_entry(spec: ModelSpec, path: Path | None = None) -> Path:
    """Add or replace `spec` in the user's models.yaml; the file is validated before it lands."""
    path = path or registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    try:
        new_text = _edited_text(text, spec) if text.strip() else HEADER + "\nmodels:\n"
        if not text.strip():
            new_text += _entry_yaml(spec, "  ")
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(new_text, encoding="utf-8")
        load_catalog(tmp).get(spec.name)  # the edit must leave a valid registry behind
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
