"""Getting one file's bytes in place: a `.part` beside the destination, filled from the
Hub cache or by download (resumed with Range), then size, sha256 and GGUF header checked
before anything is renamed or registered."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from reasoncli.errors import ModelError, ReasonError, ResourceError
from reasoncli.hub.api import HubConfig, RemoteFile, hub_errors, is_transport_error
from reasoncli.hub.progress import PullReporter, bar_class
from reasoncli.hub.targets import PullTarget
from reasoncli.models.gguf_file import read_gguf_info
from reasoncli.models.install import hf_local_path, models_dir
from reasoncli.models.schema import HfRef, check_repo_file, check_repo_id
from reasoncli.paths import file_lock

_HASH_CHUNK = 8 * 2**20


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialize pulls of one file: two processes appending to one .part would corrupt it."""
    lock_dir = models_dir() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(path).encode()).hexdigest()[:24]
    with file_lock(lock_dir / f"{key}.lock"):  # Windows: none; unique part names still apply
        yield


def part_path(dest: Path, remote: RemoteFile) -> Path:
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


def from_hf_cache(config: HubConfig, target: PullTarget, remote: RemoteFile, part: Path) -> bool:
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


def download(
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
    with open(part, "ab") as fh, hub_errors(config, file, file):
        try:
            http_get(
                remote.url,
                fh,
                resume_size=have,
                headers=_auth_headers(config, remote),
                expected_size=remote.size,
                displayed_filename=file.rsplit("/", 1)[-1],
                tqdm_class=bar_class(reporter),
            )
        except Exception as exc:
            # huggingface_hub already retried (with Range) while bytes kept coming.
            early = isinstance(exc, OSError) and "Consistency check failed" in str(exc)
            if not (early or is_transport_error(exc)):
                raise
            fh.flush()
            raise ReasonError(
                f"{file}: the download was interrupted at {fh.tell()} bytes "
                f"({type(exc).__name__}); run the same command again to resume"
            ) from None
    return have


def verify(
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


def matches(dest: Path, remote: RemoteFile, pinned: str | None, reporter: PullReporter) -> bool:
    """Whether the installed file is the one the Hub has (size, then sha256 when known)."""
    size = dest.stat().st_size
    if remote.size is not None and size != remote.size:
        return False
    expected = pinned or remote.sha256
    if expected:
        reporter.status("already installed; checking sha256")
        return sha256_file(dest) == expected
    return True
