"""Pull GGUF files from the Hugging Face Hub into reason's models folder, and remove them.

Built on huggingface_hub, so `HF_ENDPOINT` (a mirror, or the tests' local server), `HF_TOKEN`
(gated and private repos) and the Hub cache behave as in every other HF tool: a file already in
the Hub cache at the same commit is copied from there instead of downloaded again.

The transfer is huggingface_hub's `http_get` into a `.part` file of our own, because
`hf_hub_download` discards a partial download when the process dies, and because nothing may
be registered before it is checked. The order is: bytes into `.NAME.<etag>.part` (resumed with
an HTTP Range request, both after a dropped connection and in a later run) -> size -> sha256
against the Hub's LFS hash -> GGUF header -> atomic rename -> registry entry. A failed check
deletes the part file and registers nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from reasoncli.errors import ModelError, ReasonError, ResourceError, UsageError
from reasoncli.models.catalog import Catalog, load_catalog
from reasoncli.models.filenames import quant_from_filename, split_part
from reasoncli.models.gguf_file import GGUFInfo, read_gguf_info
from reasoncli.models.install import hf_local_path, models_dir
from reasoncli.models.pulled import pulled_names, register_pulled, unregister_pulled
from reasoncli.models.resolve import HF_TARGET_RE, adhoc_spec, find_hf_entry
from reasoncli.models.schema import NAME_RE, HfRef, ModelSpec, check_repo_file, check_repo_id

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_QUANT = "Q4_K_M"
"""What `owner/repo` without a tag pulls when the repo has several GGUFs (as llama.cpp -hf)."""
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HASH_CHUNK = 8 * 2**20


# --------------------------------------------------------------------------------------------
# Progress: the library reports, the CLI renders
# --------------------------------------------------------------------------------------------


class PullReporter(Protocol):
    """What a pull tells its user; the CLI renders it, library callers may ignore it."""

    def status(self, message: str) -> None:
        """A step worth a line: resolving, resuming, verifying, registering."""

    def download_started(self, description: str, total: int | None, done: int) -> None:
        """Bytes start flowing; `done` bytes were already on disk (a resumed download)."""

    def downloaded(self, n_bytes: int) -> None:
        """`n_bytes` more arrived (negative when the server ignored a Range request)."""

    def download_finished(self) -> None:
        """The transfer ended, successfully or not."""


class SilentReporter:
    """Says nothing: library use and `--json`."""

    def status(self, message: str) -> None:
        pass

    def download_started(self, description: str, total: int | None, done: int) -> None:
        pass

    def downloaded(self, n_bytes: int) -> None:
        pass

    def download_finished(self) -> None:
        pass


@contextlib.contextmanager
def _hub_log_to(reporter: PullReporter) -> Iterator[None]:
    """Route huggingface_hub's warnings (retries, resumes) to `reporter` for the duration of a
    pull, instead of its own stderr handler: the CLI promises one `Error:` line on failure,
    and `--quiet` means quiet."""
    import logging

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reporter.status(record.getMessage().splitlines()[0])

    hub_logger = logging.getLogger("huggingface_hub")
    saved = (hub_logger.handlers[:], hub_logger.propagate, hub_logger.level)
    hub_logger.handlers = [_Forward(logging.WARNING)]
    hub_logger.propagate = False
    hub_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        hub_logger.handlers, hub_logger.propagate = saved[0], saved[1]
        hub_logger.setLevel(saved[2])


def _bar_class(reporter: PullReporter) -> type:
    """A tqdm stand-in for huggingface_hub's `http_get`, forwarding to `reporter`."""

    class _Bar:
        def __init__(
            self, *_: Any, total: int | None = None, initial: int = 0, desc: str = "", **__: Any
        ) -> None:
            reporter.download_started(desc, total, initial)

        def update(self, n: int = 1) -> None:
            reporter.downloaded(n)

        def close(self) -> None:
            pass

        def __enter__(self) -> _Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            reporter.download_finished()

    return _Bar


# --------------------------------------------------------------------------------------------
# Hub configuration, read at call time so a changed environment is honoured in-process
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubConfig:
    endpoint: str
    cache_dir: Path
    """The huggingface_hub cache (`HF_HUB_CACHE`, else `HF_HOME/hub`)."""

    @classmethod
    def from_env(cls) -> HubConfig:
        endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        cache = os.environ.get("HF_HUB_CACHE")
        if not cache:
            home = os.environ.get("HF_HOME")
            if not home:
                xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
                home = os.path.join(xdg, "huggingface")
            cache = os.path.join(home, "hub")
        return cls(endpoint, Path(cache).expanduser())


@dataclass(frozen=True)
class RemoteFile:
    """What the Hub's resolve endpoint says about one file at one revision."""

    url: str
    """Where the bytes are (a CDN address for LFS files)."""
    commit: str | None
    etag: str
    size: int | None
    sha256: str | None
    """The LFS object id, i.e. the file's sha256; None for files stored in git itself."""


@contextlib.contextmanager
def _hub_errors(config: HubConfig, repo: str, what: str) -> Iterator[None]:
    """Turn huggingface_hub and httpx exceptions into one-line ReasonErrors."""
    from huggingface_hub import errors as hf_errors

    try:
        yield
    except ReasonError:
        raise
    except hf_errors.GatedRepoError:
        raise ModelError(
            f"{repo} is gated: accept its license at {config.endpoint}/{repo} and set HF_TOKEN"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise ModelError(
            f"repository {repo} not found on {config.endpoint} "
            "(if it is private, set HF_TOKEN to a token that can read it)"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise ModelError(f"{what}: revision not found in {repo}") from None
    except hf_errors.RemoteEntryNotFoundError:
        raise ModelError(f"{what} not found in {repo} (404)") from None
    except hf_errors.OfflineModeIsEnabled:
        raise ReasonError("HF_HUB_OFFLINE is set: unset it to pull models") from None
    except hf_errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise ReasonError(f"{what}: the Hub answered HTTP {status}") from None
    except Exception as exc:
        if not _is_transport_error(exc):
            raise
        raise ReasonError(
            f"cannot reach {config.endpoint} ({type(exc).__name__}: {exc}); check the "
            "connection or HF_ENDPOINT"
        ) from None


def _is_transport_error(exc: BaseException) -> bool:
    """A network failure from the HTTP client huggingface_hub uses (httpx or its fork)."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2") or isinstance(
        exc, ConnectionError | TimeoutError
    )


def list_gguf_files(config: HubConfig, repo: str, revision: str | None) -> list[str]:
    """Every `.gguf` path in `repo` (recursively), as the Hub's tree listing names them."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=config.endpoint, library_name="reasoncli")
    with _hub_errors(config, repo, f"listing {repo}"):
        entries = api.list_repo_tree(repo, revision=revision, recursive=True)
        return [e.path for e in entries if getattr(e, "path", "").lower().endswith(".gguf")]


def remote_file(config: HubConfig, repo: str, file: str, revision: str | None) -> RemoteFile:
    """Metadata from the resolve endpoint (HEAD): commit, etag, size, and the sha256 for LFS."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, file, revision=revision, endpoint=config.endpoint)
    with _hub_errors(config, repo, file):
        meta = get_hf_file_metadata(url, endpoint=config.endpoint, library_name="reasoncli")
    if not meta.etag:
        raise ModelError(f"{file}: the Hub sent no ETag; is HF_ENDPOINT a Hub endpoint?")
    sha = meta.etag.lower()
    return RemoteFile(
        url=meta.location or url,
        commit=meta.commit_hash,
        etag=meta.etag,
        size=meta.size,
        sha256=sha if _SHA256_RE.match(sha) else None,
    )


# --------------------------------------------------------------------------------------------
# Choosing a file: curated names, owner/repo:QUANT
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Destination and registration
# --------------------------------------------------------------------------------------------


def destination(repo: str, file: str) -> Path:
    """Where `file` of `repo` goes, refusing any name that would land outside the models folder
    (the Hub's listing is input like any other)."""
    root = (models_dir() / "hf").resolve()
    try:
        path = hf_local_path(HfRef(repo=check_repo_id(repo), file=check_repo_file(file)))
    except ValueError as exc:
        raise ModelError(f"refusing to pull: {exc}, so it could escape the models folder") from None
    if not path.resolve().is_relative_to(root):  # e.g. a symlinked folder inside
        raise ModelError(f"refusing {file!r}: it would be written outside {root}")
    return path


def default_name(file: str) -> str:
    """A registry name from a file name: `DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf` ->
    `deepseek-r1-distill-qwen-1.5b-q4_k_m`."""
    name = re.sub(r"[^a-z0-9._-]+", "-", _stem(file).lower()).strip("-._")
    return (name or "model")[:100]


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


# --------------------------------------------------------------------------------------------
# Pull
# --------------------------------------------------------------------------------------------


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize pulls of one file: two processes appending to one .part would corrupt it."""
    lock_dir = models_dir() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    with open(lock_dir / f"{key}.lock", "w") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # Windows: no advisory lock; unique part names still apply
            pass
        yield


def _part_path(dest: Path, remote: RemoteFile) -> Path:
    """Hidden, beside the destination (same filesystem: the final rename is atomic), and keyed
    by the etag so a file that changed upstream never resumes into the old bytes."""
    key = re.sub(r"[^A-Za-z0-9]", "", remote.etag)[:16] or "x"
    return dest.with_name(f".{dest.name}.{key}.part")


def _auth_headers(config: HubConfig, remote: RemoteFile) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers  # type: ignore[attr-defined]

    headers: dict[str, str] = build_hf_headers(library_name="reasoncli")
    base = urlsplit(config.endpoint)
    there = urlsplit(remote.url)
    if (there.scheme, there.netloc) != (base.scheme, base.netloc):
        headers.pop("authorization", None)  # never hand the token to a CDN
    return headers


def _from_hf_cache(config: HubConfig, target: PullTarget, remote: RemoteFile, part: Path) -> bool:
    """Link (or copy) the file from the Hub cache into `part` when it holds this commit's
    version; checked like a download afterwards."""
    from huggingface_hub import try_to_load_from_cache

    if not remote.commit:
        return False
    cached = try_to_load_from_cache(
        target.repo, target.file, cache_dir=config.cache_dir, revision=remote.commit
    )
    if not isinstance(cached, str) or not os.path.isfile(cached):
        return False
    if remote.size is not None and os.path.getsize(cached) != remote.size:
        return False
    part.unlink(missing_ok=True)
    try:
        os.link(os.path.realpath(cached), part)
    except OSError:
        shutil.copyfile(cached, part)
    return True


def _download(
    config: HubConfig, remote: RemoteFile, part: Path, file: str, reporter: PullReporter
) -> int:
    """Fill `part` from the Hub, continuing from its current size; returns that size."""
    from huggingface_hub.file_download import http_get

    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have > remote.size:
        part.unlink()  # longer than the file: not ours to resume
        have = 0
    if have:
        reporter.status(f"resuming at {have} bytes")
    if remote.size is not None:
        free = shutil.disk_usage(part.parent).free
        if remote.size - have > free:
            raise ResourceError(
                f"{file} needs {(remote.size - have) / 1e9:.2f} GB more but {part.parent} has "
                f"only {free / 1e9:.2f} GB free"
            )
    with open(part, "ab") as fh, _hub_errors(config, file, file):
        try:
            http_get(
                remote.url,
                fh,
                resume_size=have,
                headers=_auth_headers(config, remote),
                expected_size=remote.size,
                displayed_filename=file.rsplit("/", 1)[-1],
                tqdm_class=_bar_class(reporter),
            )
        except Exception as exc:
            # huggingface_hub already retried (with Range) while bytes kept coming.
            early = isinstance(exc, OSError) and "Consistency check failed" in str(exc)
            if not (early or _is_transport_error(exc)):
                raise
            fh.flush()
            raise ReasonError(
                f"{file}: the download was interrupted at {fh.tell()} bytes "
                f"({type(exc).__name__}); run the same command again to resume"
            ) from None
    return have


def _verify(
    part: Path, file: str, remote: RemoteFile, pinned: str | None, reporter: PullReporter
) -> bool:
    """Size, sha256 and GGUF header of a complete `part`; deletes it when a check fails, so the
    next pull starts clean. Returns whether a sha256 was checked."""
    dropped = "the download was deleted and nothing was registered"
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        part.unlink()
        raise ModelError(f"{file}: got {size} bytes but the Hub announced {remote.size}; {dropped}")
    expected = pinned or remote.sha256
    if expected:
        reporter.status("checking sha256")
        got = sha256_file(part)
        if got != expected:
            part.unlink()
            raise ModelError(
                f"{file}: checksum mismatch (sha256 {got}, expected {expected}); {dropped}"
            )
    reporter.status("checking the GGUF header")
    try:
        read_gguf_info(part)
    except ModelError as exc:
        part.unlink(missing_ok=True)
        why = str(exc).replace(f": {part}", "").replace(str(part), "file")
        raise ModelError(f"{file}: {why}; {dropped}") from None
    return expected is not None


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
    with _hub_log_to(reporter):
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
    with _locked(dest):
        if not force and dest.is_file() and _matches(dest, remote, pinned, reporter):
            checked = bool(pinned or remote.sha256)
        else:
            part = _part_path(dest, remote)
            dest.parent.mkdir(parents=True, exist_ok=True)
            origin = "download"
            if force:
                part.unlink(missing_ok=True)
            if not part.exists() and _from_hf_cache(config, t, remote, part):
                origin = "hf-cache"
                reporter.status("found in the Hugging Face cache")
            else:
                resumed = _download(config, remote, part, t.file, reporter)
            checked = _verify(part, t.file, remote, pinned, reporter)
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


def _matches(dest: Path, remote: RemoteFile, pinned: str | None, reporter: PullReporter) -> bool:
    """Whether the installed file is the one the Hub has (size, then sha256 when known)."""
    size = dest.stat().st_size
    if remote.size is not None and size != remote.size:
        return False
    expected = pinned or remote.sha256
    if expected:
        reporter.status("already installed; checking sha256")
        return sha256_file(dest) == expected
    return True


# --------------------------------------------------------------------------------------------
# Remove
# --------------------------------------------------------------------------------------------


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
