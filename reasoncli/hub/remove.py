"""`reason models rm`: delete what `pull` wrote, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasoncli.errors import ModelError
from reasoncli.models.catalog import Catalog, load_catalog
from reasoncli.models.install import hf_local_path, models_dir
from reasoncli.models.pulled import pulled_names, unregister_pulled
from reasoncli.models.resolve import HF_TARGET_RE, find_hf_entry


@dataclass(frozen=True)
class RemoveResult:
    name: str
    removed: list[Path]
    freed_bytes: int
    unregistered: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "removed": [str(p) for p in self.removed],
            "freed_bytes": self.freed_bytes,
            "unregistered": self.unregistered,
        }


def remove(name: str, catalog: Catalog | None = None) -> RemoveResult:
    """Delete a pulled model's file (and partial downloads) and its pulled.yaml entry. Only
    what `pull` wrote: package, resolver and path models are left alone."""
    catalog = catalog or load_catalog()
    spec = catalog.find(name)
    if spec is None:
        m = HF_TARGET_RE.match(name)
        spec = find_hf_entry(catalog, m["repo"], m["tag"]) if m and m["tag"] else None
    if spec is None:
        catalog.get(name)  # raises with close names
    assert spec is not None
    hf = spec.source.hf
    if hf is None:
        raise ModelError(
            f"model {spec.name!r} was not pulled ({spec.source.describe()}); "
            "reason only removes what `reason models pull` downloaded"
        )
    path = hf_local_path(hf)
    removed: list[Path] = []
    freed = 0
    for p in [path, *path.parent.glob(f".{path.name}.*.part")] if path.parent.is_dir() else []:
        if p.is_file():
            freed += p.stat().st_size
            p.unlink()
            removed.append(p)
    root = models_dir() / "hf"
    parent = path.parent
    while parent != root and parent.is_relative_to(root):
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break
        parent = parent.parent
    unregistered = spec.name in pulled_names() and unregister_pulled(spec.name)
    if not removed and not unregistered:
        raise ModelError(f"model {spec.name!r} is not downloaded; nothing to remove")
    return RemoveResult(spec.name, removed, freed, unregistered)
