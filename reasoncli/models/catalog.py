"""The merged registry (`Catalog`): the shipped models.yaml, then the user's, then what
`reason models pull` registered; lookups by name or alias.
"""

from __future__ import annotations

import difflib
import importlib.resources
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from reasoncli.errors import CatalogError, ModelError
from reasoncli.models.loader import parse_catalog
from reasoncli.models.pulled import read_pulled
from reasoncli.models.schema import ModelSpec


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
    shipped = parse_catalog(shipped_res.read_text(encoding="utf-8"), str(shipped_res), None)
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
        files.append(parse_catalog(text, str(path), path.parent.resolve()))
    specs: dict[str, ModelSpec] = {}
    origins: dict[str, str] = {}
    default, default_origin = None, shipped.label
    for cat in files:
        specs.update(cat.specs)
        origins.update(dict.fromkeys(cat.specs, cat.label))
        if cat.default is not None:
            default, default_origin = cat.default, cat.label
    pulled = read_pulled()
    if pulled is not None:
        taken = {key.casefold() for s in specs.values() for key in (s.name, *s.aliases)}
        for name, spec in pulled.specs.items():
            if name.casefold() not in taken:
                specs[name] = spec
                origins[name] = pulled.label
    return Catalog(list(specs.values()), default, origins, default_origin)
