"""The Hub's endpoints reason uses (tree listing, resolve metadata), configured from the
environment at call time so a changed `HF_ENDPOINT` is honoured in-process, and its errors as
one line."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reasoncli.errors import ModelError, ReasonError

DEFAULT_ENDPOINT = "https://huggingface.co"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


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
def hub_errors(config: HubConfig, repo: str, what: str) -> Iterator[None]:
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
        if not is_transport_error(exc):
            raise
        raise ReasonError(
            f"cannot reach {config.endpoint} ({type(exc).__name__}: {exc}); check the "
            "connection or HF_ENDPOINT"
        ) from None


def is_transport_error(exc: BaseException) -> bool:
    """A network failure from the HTTP client huggingface_hub uses (httpx or its fork)."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2") or isinstance(
        exc, ConnectionError | TimeoutError
    )


def list_gguf_files(config: HubConfig, repo: str, revision: str | None) -> list[str]:
    """Every `.gguf` path in `repo` (recursively), as the Hub's tree listing names them."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=config.endpoint, library_name="reasoncli")
    with hub_errors(config, repo, f"listing {repo}"):
        entries = api.list_repo_tree(repo, revision=revision, recursive=True)
        return [e.path for e in entries if getattr(e, "path", "").lower().endswith(".gguf")]


def remote_file(config: HubConfig, repo: str, file: str, revision: str | None) -> RemoteFile:
    """Metadata from the resolve endpoint (HEAD): commit, etag, size, and the sha256 for LFS."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, file, revision=revision, endpoint=config.endpoint)
    with hub_errors(config, repo, file):
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
