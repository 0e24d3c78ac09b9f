"""Where each entry's GGUF is on disk and whether it is there: cheap checks for listings
(`check_installed`), and `resolve_spec` for runs, which may materialize a packaged file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reasoncli.errors import ModelError
from reasoncli.models.packaged import RESOLVERS, package_file
from reasoncli.models.schema import HfRef, ModelSpec
from reasoncli.paths import models_dir


def hf_local_path(ref: HfRef) -> Path:
    """The file `reason models pull` writes for `ref`; the single place this layout is decided."""
    return models_dir() / "hf" / ref.repo / ref.file


def locate(spec: ModelSpec) -> tuple[Path | None, int | None]:
    """(ready file or None if it needs materializing, size); ModelError when unavailable."""
    src = spec.source
    if src.openai is not None:
        raise ModelError(
            f"model {spec.name!r} is served by {src.openai.base_url}; it has no local file"
        )
    if src.package is not None:
        path = package_file(spec, src.package)
    elif src.hf is not None:
        path = hf_local_path(src.hf)
        if not path.is_file():
            raise ModelError(
                f"model {spec.name!r} is not downloaded; run `reason models pull {spec.name}`"
            )
    elif src.resolver is not None:
        return RESOLVERS[src.resolver].locate(spec)
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
        path, size = locate(spec)
    except ModelError as exc:
        return Installation(False, None, None, str(exc))
    return Installation(True, path, size, "")


def resolve_spec(spec: ModelSpec) -> Path:
    """The GGUF path for `spec`, materializing it if its source needs that; ModelError if not
    installed (with the command that installs it)."""
    path, _ = locate(spec)
    if path is None:
        assert spec.source.resolver is not None
        path = RESOLVERS[spec.source.resolver].materialize(spec)
    return path
