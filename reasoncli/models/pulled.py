"""pulled.yaml: the entries `reason models pull` registers and `reason models rm` removes,
kept apart from the user's own models.yaml, which no program rewrites.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reasoncli.errors import CatalogError
from reasoncli.models.install import models_dir
from reasoncli.models.loader import CatalogFile, parse_catalog, parse_yaml
from reasoncli.models.schema import ModelSpec
from reasoncli.paths import file_lock

PULLED_HEADER = (
    "# Models registered by `reason models pull`; `reason models rm NAME` removes them.\n"
    "# Written by reason: to change an entry, copy it to ~/.config/reason/models.yaml.\n"
)


def pulled_catalog_path() -> Path:
    """The registry of pulled models. It lives beside the files it describes, so pointing
    `REASON_MODELS_DIR` elsewhere moves both together, and the user's own models.yaml is never
    rewritten by a program."""
    return models_dir() / "pulled.yaml"


def read_pulled() -> CatalogFile | None:
    path = pulled_catalog_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from None
    return parse_catalog(text, str(path), None)


def pulled_names() -> set[str]:
    """Names of the entries `pull` registered (whether or not they made it into the catalog)."""
    pulled = read_pulled()
    return set(pulled.specs) if pulled is not None else set()


def _update_pulled(change: Callable[[dict[str, Any]], None]) -> None:
    """Read-modify-write pulled.yaml under a lock, replacing it atomically, so concurrent pulls
    cannot lose each other's entries and a crash never leaves half a file."""
    path = pulled_catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Windows has no advisory locks: there the atomic replace still holds
    with file_lock(path.with_name(".pulled.yaml.lock")):
        try:
            doc = parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
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
