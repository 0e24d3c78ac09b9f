"""What a pull target names: a registry entry, `owner/repo`, `owner/repo:QUANT` or
`owner/repo:path/file.gguf`, down to one file of one repository."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from reasoncli.errors import ModelError
from reasoncli.hub.api import HubConfig, list_gguf_files
from reasoncli.models.catalog import Catalog
from reasoncli.models.filenames import quant_from_filename, split_part
from reasoncli.models.resolve import HF_TARGET_RE, find_hf_entry
from reasoncli.models.schema import ModelSpec, check_repo_id

DEFAULT_QUANT = "Q4_K_M"
"""What `owner/repo` without a tag pulls when the repo has several GGUFs (as llama.cpp -hf)."""


@dataclass(frozen=True)
class PullTarget:
    repo: str
    file: str
    revision: str | None
    spec: ModelSpec | None
    """The registry entry being pulled; None for an `owner/repo:QUANT` not registered yet."""
    note: str = ""
    """How a quant tag was resolved, when that is worth saying."""


def _stem(file: str) -> str:
    return file.rsplit("/", 1)[-1].removesuffix(".gguf").removesuffix(".GGUF")


def _choices(repo: str, files: Sequence[str], all_files: Sequence[str]) -> str:
    """`repo:TAG` for each file, by quant tag where the tag is unique in the repo."""
    tags = [quant_from_filename(f) for f in all_files]
    out = []
    for f in sorted(files):
        tag = quant_from_filename(f)
        out.append(f"{repo}:{tag if tag and tags.count(tag) == 1 else f}")
    return ", ".join(out)


def choose_file(repo: str, tag: str | None, files: Sequence[str]) -> tuple[str, str]:
    """(file, note) for `repo:tag` among the repo's GGUF `files`.

    An exact quant tag wins (`Q4_K_M` is the tag of `...-Q4_K_M.gguf`); otherwise the tag must
    appear as a word in exactly one name. Vision projectors (mmproj) are never candidates."""
    ggufs = [f for f in files if "mmproj" not in _stem(f).lower()]
    if not ggufs:
        raise ModelError(f"{repo} has no GGUF model files")
    if tag is None:
        if len(ggufs) == 1:
            return ggufs[0], ""
        default = [f for f in ggufs if quant_from_filename(f) == DEFAULT_QUANT]
        if len(default) == 1:
            return default[0], f"no quant given: chose {DEFAULT_QUANT}"
        raise ModelError(
            f"{repo} has {len(ggufs)} GGUF files; pick one: {_choices(repo, ggufs, ggufs)}"
        )
    exact = [f for f in ggufs if (quant_from_filename(f) or "").casefold() == tag.casefold()]
    if not exact:
        word = re.compile(rf"(?<![A-Za-z0-9]){re.escape(tag)}(?![A-Za-z0-9])", re.IGNORECASE)
        exact = [f for f in ggufs if word.search(_stem(f))]
    if len(exact) == 1:
        found = exact[0]
        return found, "" if quant_from_filename(found) == tag.upper() else f"{tag} -> {found}"
    if exact:
        parts = {split_part(f) for f in exact}
        if all(p is not None and p[1] > 1 for p in parts):
            raise ModelError(
                f"{repo}:{tag} is split into {len(exact)} files; split GGUFs are not supported "
                "yet (download the parts and pass the first with --model)"
            )
        raise ModelError(
            f"{repo}:{tag} matches {len(exact)} files; pick one: {_choices(repo, exact, ggufs)}"
        )
    known = sorted({quant_from_filename(f) or f for f in ggufs})
    raise ModelError(f"no GGUF in {repo} matches quant {tag!r}; available: {', '.join(known)}")


def resolve_target(
    target: str, catalog: Catalog, *, revision: str | None, config: HubConfig
) -> PullTarget:
    """A registry name, `owner/repo`, `owner/repo:QUANT` or `owner/repo:path/file.gguf`."""
    spec = catalog.find(target)
    if spec is not None:
        hf = spec.source.hf
        if hf is None:
            raise ModelError(
                f"model {spec.name!r} does not come from the Hub ({spec.source.describe()}); "
                "there is nothing to pull"
            )
        return PullTarget(hf.repo, hf.file, revision or hf.revision, spec)
    m = HF_TARGET_RE.match(target)
    if m is None:
        try:
            catalog.get(target)
        except ModelError as exc:
            raise ModelError(f"{exc}, or pull owner/repo:QUANT from the Hub") from None
        raise AssertionError("catalog.get raises for names find() does not know")
    try:
        repo = check_repo_id(m["repo"])
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    tag = m["tag"]
    note = ""
    if tag is not None and tag.lower().endswith(".gguf"):
        file = tag
    else:
        file, note = choose_file(repo, tag, list_gguf_files(config, repo, revision))
    return PullTarget(repo, file, revision, find_hf_entry(catalog, repo, file), note)


def default_name(file: str) -> str:
    """A registry name from a file name: `DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf` ->
    `deepseek-r1-distill-qwen-1.5b-q4_k_m`."""
    name = re.sub(r"[^a-z0-9._-]+", "-", _stem(file).lower()).strip("-._")
    return (name or "model")[:100]
