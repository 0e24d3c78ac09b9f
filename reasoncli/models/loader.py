"""models.yaml text -> validated entries, with every problem as one line naming the file, the
entry and the field (pydantic's multi-line reports and PyYAML's tracebacks never reach a user).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from reasoncli.errors import CatalogError
from reasoncli.models.schema import ModelSpec


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


def parse_yaml(text: str, label: str) -> Any:
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
class CatalogFile:
    label: str
    specs: dict[str, ModelSpec]
    default: str | None


_TOP_KEYS = ("default", "models")


def parse_catalog(text: str, label: str, base_dir: Path | None) -> CatalogFile:
    doc = parse_yaml(text, label)
    if doc is None:
        return CatalogFile(label, {}, None)
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
    return CatalogFile(label, specs, default)


def _anchor_path(spec: ModelSpec, base_dir: Path | None) -> ModelSpec:
    """A relative `path:` source means relative to the file that declares it, not the cwd."""
    p = spec.source.path
    if p is None or base_dir is None or p.startswith("~") or os.path.isabs(p):
        return spec
    source = spec.source.model_copy(update={"path": str(base_dir / p)})
    return spec.model_copy(update={"source": source})
