"""A Hugging Face Hub stand-in on 127.0.0.1, for `reason models pull` tests.

It serves what huggingface_hub asks of the real Hub, with the same headers:
- `GET /api/models/{repo}/tree/{revision}` lists files (path, size, git oid, LFS sha256);
- `HEAD /{repo}/resolve/{revision}/{file}` answers like an LFS file: 302 to a CDN, with
  X-Repo-Commit, X-Linked-Etag (the sha256), X-Linked-Size, and X-Error-Code on 401/404;
- the "CDN" is a second server (another origin, so the token must not reach it) that serves
  the bytes with Range support.

Faults on demand: a connection dropped mid-body, a wrong advertised sha256, names that climb
out of the repo. Every request is recorded, headers included.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    data: bytes
    sha256: str | None = None
    """What the Hub advertises; None means the true sha256."""
    lfs: bool = True

    @property
    def advertised(self) -> str:
        return self.sha256 or hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass(frozen=True)
class Seen:
    server: str  # "hub" | "cdn"
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    listed_only: dict[str, list[str]] = field(default_factory=dict)
    """Names the tree listing shows without serving them (e.g. path-traversal names)."""
    drop_plan: list[int] = field(default_factory=list)
    """For each of the next CDN responses: close the connection after this many body bytes."""
    seen: list[Seen] = field(default_factory=list)
    hub_port: int = 0
    cdn_port: int = 0

    def add(self, repo: str, file: str, data: bytes, **kw: object) -> HubFile:
        f = HubFile(data, **kw)  # type: ignore[arg-type]
        self.repos.setdefault(repo, {})[file] = f
        return f

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    def requests(self, server: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.server == server and method in (None, s.method)]


def _handler(hub: FakeHub, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            pass

        def _record(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            hub.seen.append(Seen(server_name, self.command, self.path, headers))

        def _send(self, code: int, headers: dict[str, str], body: bytes = b"") -> None:
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, code: int, error_code: str) -> None:
            extra = {"X-Repo-Commit": COMMIT} if error_code == "EntryNotFound" else {}
            self._send(code, {"X-Error-Code": error_code, **extra}, b"{}")

        def do_HEAD(self) -> None:  # noqa: N802
            self._record()
            self._route()

        def do_GET(self) -> None:  # noqa: N802
            self._record()
            self._route()

        def _route(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if server_name == "cdn":
                return self._cdn(path)
            parts = path.lstrip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
                return self._tree("/".join(parts[2:4]))
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), "/".join(parts[4:]))
            self._send(404, {}, b"not found")

        def _tree(self, repo: str) -> None:
            files = hub.repos.get(repo)
            if files is None:
                return self._error(401, "RepoNotFound")
            entries = [
                {
                    "type": "file",
                    "oid": f.git_oid,
                    "size": len(f.data),
                    "path": name,
                    **(
                        {"lfs": {"oid": f.advertised, "size": len(f.data), "pointerSize": 134}}
                        if f.lfs
                        else {}
                    ),
                }
                for name, f in files.items()
            ]
            for name in hub.listed_only.get(repo, []):
                entries.append({"type": "file", "oid": "0" * 40, "size": 1, "path": name})
            self._send(200, {"Content-Type": "application/json"}, json.dumps(entries).encode())

        def _resolve(self, repo: str, file: str) -> None:
            files = hub.repos.get(repo)
            if files is None:
                return self._error(401, "RepoNotFound")
            f = files.get(file)
            if f is None:
                return self._error(404, "EntryNotFound")
            headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{f.git_oid}"'}
            if not f.lfs:  # stored in git: served right here, the etag is the git oid
                if self.command == "HEAD":
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(f.data)))
                    self.end_headers()
                    return
                return self._send(200, headers, f.data)
            headers.update(
                {
                    "X-Linked-Etag": f'"{f.advertised}"',
                    "X-Linked-Size": str(len(f.data)),
                    "Location": f"http://127.0.0.1:{hub.cdn_port}/{repo}/{quote(file)}",
                }
            )
            self._send(302, headers)

        def _cdn(self, path: str) -> None:
            owner, name, file = path.lstrip("/").split("/", 2)
            f = hub.repos.get(f"{owner}/{name}", {}).get(file)
            if f is None:
                return self._send(404, {}, b"no such object")
            data = f.data
            start = 0
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if self.command == "HEAD":
                return
            if hub.drop_plan:
                self.wfile.write(body[: hub.drop_plan.pop(0)])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[FakeHub]:
    """Run the hub and its CDN on loopback ports for the duration of the block."""
    servers = []
    for name in ("hub", "cdn"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub, name))
        server.daemon_threads = True
        setattr(hub, f"{name}_port", server.server_address[1])
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
    try:
        yield hub
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
