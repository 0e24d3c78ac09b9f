"""`reason models pull`: target -> remote metadata -> checked file -> registry entry."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoncli.errors import ModelError, UsageError
from reasoncli.hub.api import HubConfig, RemoteFile, remote_file
from reasoncli.hub.progress import PullReporter, SilentReporter, hub_log_to
from reasoncli.hub.targets import PullTarget, default_name, resolve_target
from reasoncli.hub.transfer import (
    destination,
    download,
    from_hf_cache,
    locked,
    matches,
    part_path,
    verify,
)
from reasoncli.models.catalog import Catalog, load_catalog
from reasoncli.models.filenames import quant_from_filename
from reasoncli.models.gguf_file import GGUFInfo, read_gguf_info
from reasoncli.models.pulled import pulled_names, register_pulled
from reasoncli.models.resolve import adhoc_spec
from reasoncli.models.schema import NAME_RE, ModelSpec


@dataclass(frozen=True)
class PullResult:
    name: str
    repo: str
    file: str
    commit: str | None
    path: Path
    size_bytes: int
    sha256: str | None
    sha256_checked: bool
    downloaded_bytes: int
    resumed_from: int
    origin: str
    """"download", "hf-cache" (copied from the Hub cache) or "present" (already installed)."""
    registered: bool
    """A new or updated entry was written to pulled.yaml (False for curated entries)."""
    info: GGUFInfo = field(repr=False)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repo": self.repo,
            "file": self.file,
            "commit": self.commit,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "sha256_checked": self.sha256_checked,
            "downloaded_bytes": self.downloaded_bytes,
            "resumed_from": self.resumed_from,
            "origin": self.origin,
            "registered": self.registered,
            "architecture": self.info.architecture,
            "parameter_count": self.info.parameter_count,
            "quant": self.info.file_type,
            "context_length": self.info.context_length,
            "note": self.note or None,
        }


def _pulled_spec(
    name: str, target: PullTarget, remote: RemoteFile, path: Path, info: GGUFInfo, catalog: Catalog
) -> ModelSpec:
    """A registry entry for a freshly pulled `owner/repo:QUANT`: prompt settings from a curated
    entry of the same repo when there is one (same model, another quant), else from the GGUF's
    chat template, as for ad-hoc files."""
    sibling = next(
        (
            s
            for s in catalog
            if s.source.hf is not None and s.source.hf.repo.casefold() == target.repo.casefold()
        ),
        None,
    )
    base = sibling or adhoc_spec(path, info)
    inherit = ("mode", "chat_template", "prompt_template", "stop", "think_tags", "sampling")
    fields: dict[str, Any] = base.model_dump(mode="json", include=set(inherit))
    fields["n_ctx"] = base.n_ctx
    quant = info.file_type or quant_from_filename(target.file) or "?"
    hf: dict[str, Any] = {"repo": target.repo, "file": target.file}
    if remote.commit:
        hf["revision"] = remote.commit
    if remote.sha256:
        hf["sha256"] = remote.sha256
    via = f"; settings from {sibling.name}" if sibling else ""
    fields.update(
        name=name,
        description=f"{target.repo} {quant}, pulled from the Hub{via}",
        source={"hf": hf},
    )
    return ModelSpec.model_validate(fields)


def pull(
    target: str,
    *,
    catalog: Catalog | None = None,
    revision: str | None = None,
    name: str | None = None,
    force: bool = False,
    reporter: PullReporter | None = None,
) -> PullResult:
    """Download `target` (a registry name or `owner/repo[:QUANT]`), check it, and register it
    so `--model NAME` finds it. Idempotent: a verified file already in place is kept."""
    catalog = catalog or load_catalog()
    reporter = reporter or SilentReporter()
    with hub_log_to(reporter):
        return _pull(target, catalog, revision, name, force, reporter)


def _pull(
    target: str,
    catalog: Catalog,
    revision: str | None,
    name: str | None,
    force: bool,
    reporter: PullReporter,
) -> PullResult:
    config = HubConfig.from_env()
    t = resolve_target(target, catalog, revision=revision, config=config)
    if name is not None and t.spec is not None:
        raise UsageError(f"--name does not apply: {target} is already registered as {t.spec.name}")
    if name is not None and not re.match(NAME_RE, name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
    if t.note:
        reporter.status(t.note)
    dest = destination(t.repo, t.file)
    pinned = t.spec.source.hf.sha256 if t.spec is not None and t.spec.source.hf else None
    entry_name = t.spec.name if t.spec is not None else name or default_name(t.file)
    if t.spec is None:
        clash = catalog.find(entry_name)
        if clash is not None:
            raise ModelError(
                f"the name {entry_name!r} is taken by {clash.source.describe()}; "
                "choose another with --name"
            )

    reporter.status(f"resolving {t.repo}:{t.file}")
    remote = remote_file(config, t.repo, t.file, t.revision)
    if pinned and remote.sha256 and pinned != remote.sha256:
        raise ModelError(
            f"{t.file} on the Hub has sha256 {remote.sha256}, not the {pinned} that "
            f"{t.spec.name if t.spec else target} pins; nothing was downloaded"
        )

    origin, resumed, checked = "present", 0, False
    with locked(dest):
        if not force and dest.is_file() and matches(dest, remote, pinned, reporter):
            checked = bool(pinned or remote.sha256)
        else:
            part = part_path(dest, remote)
            dest.parent.mkdir(parents=True, exist_ok=True)
            origin = "download"
            if force:
                part.unlink(missing_ok=True)
            if not part.exists() and from_hf_cache(config, t, remote, part):
                origin = "hf-cache"
                reporter.status("found in the Hugging Face cache")
            else:
                resumed = download(config, remote, part, t.file, reporter)
            checked = verify(part, t.file, remote, pinned, reporter)
            os.replace(part, dest)
    info = read_gguf_info(dest)
    size = dest.stat().st_size
    downloaded = size - resumed if origin == "download" else 0

    registered = False
    if t.spec is None or entry_name in pulled_names():
        spec = _pulled_spec(entry_name, t, remote, dest, info, catalog)
        register_pulled(spec)
        registered = True
        reporter.status(f"registered as {entry_name}")
    return PullResult(
        name=entry_name,
        repo=t.repo,
        file=t.file,
        commit=remote.commit,
        path=dest,
        size_bytes=size,
        sha256=pinned or remote.sha256,
        sha256_checked=checked,
        downloaded_bytes=downloaded,
        resumed_from=resumed,
        origin=origin,
        registered=registered,
        info=info,
        note=t.note,
    )
