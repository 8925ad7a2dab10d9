"""Serving the bundled web UI (web_ui/): from memory, compressed, cached by content hash, with
the app shell for every client-side route, and security headers (issue 13: a first visit
fetched 64 modules one by one through a file read each).

Each file is read once (and again only when it changes on disk: its size or mtime moved), with a
strong ETag made from a hash of its bytes and, for text, a gzip copy made once. So a request is a
dictionary lookup and one write: no thread hop, no file read. Vendored libraries (`/vendor/...`)
never change under a name, so they are cached for a year; everything else revalidates by its
content hash (ETag: 304 when it did not change), so an upgrade shows at the next load. The shell
preloads the first screen's module graph (`<link rel="modulepreload">`), so the browser asks for
those modules at once instead of discovering them import by import; views not on the first screen
load when first opened. Paths that are not a file
(`/setup`, `/invite`, `/c/...`) get `index.html`, and the client routes them.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from ..errors import NotFound
from ..resources import resource
from .common import error_response

# Scripts and styles only from us; no inline script; images from us, data: and blob: (previews);
# the API and the realtime stream on our own origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; manifest-src 'self'; worker-src 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "application/manifest+json", "image/svg+xml")
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".webmanifest": "application/manifest+json"}
MIN_GZIP_BYTES = 512


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: bytes
    cache_control: bytes
    stamp: tuple[int, int]  # (size, mtime_ns) when read


def content_type(path: Path) -> str:
    kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind.endswith(("json", "javascript")) else kind


def cache_control(name: str) -> bytes:
    if name.startswith("vendor/"):
        return b"public, max-age=31536000, immutable"
    return b"no-cache"  # revalidated by content hash: 304 while it did not change


def load(path: Path, name: str) -> Asset:
    stat = path.stat()
    body = path.read_bytes()
    kind = content_type(path)
    compress = kind.startswith(COMPRESSIBLE) and len(body) >= MIN_GZIP_BYTES
    gzipped = gzip.compress(body, compresslevel=6, mtime=0) if compress else None
    etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
    return Asset(body, gzipped, kind, etag, cache_control(name), (stat.st_size, stat.st_mtime_ns))


class WebUI:
    """An ASGI app answering GET and HEAD for the files under `directory`."""

    def __init__(self, directory: Path | None = None) -> None:
        self.root = (directory or resource("web_ui")).resolve()
        self._assets: dict[str, Asset] = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                name = path.relative_to(self.root).as_posix()
                self._assets[name] = load(path, name)

    def asset(self, name: str) -> Asset | None:
        """The file `name` (relative, already checked), re-read if it changed on disk."""
        path = self.root / name
        try:
            stat = os.stat(path)
        except OSError:
            self._assets.pop(name, None)
            return None
        if not path.is_file():
            return None
        known = self._assets.get(name)
        if known is None or known.stamp != (stat.st_size, stat.st_mtime_ns):
            known = self._assets[name] = load(path, name)
        return known

    def find(self, url_path: str) -> tuple[str, Asset] | None:
        parts = PurePosixPath(url_path).parts[1:]
        if any(part in ("..", ".") or part.startswith(".") for part in parts):
            return None
        name = "/".join(parts) or "index.html"
        found = self.asset(name)
        if found is None and (not parts or "." not in parts[-1]):
            name, found = "index.html", self.asset("index.html")  # a client-side route: the shell
        return (name, found) if found is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise HTTPException(status_code=404)
        if scope["path"] == "/v1" or scope["path"].startswith(("/v1/", "/metrics")):
            # An API path the API's mount could not take (`/v1/channels/a%0Ab`: its pattern stops
            # at a newline) is still the API's: its 404 is JSON, never the UI's (issue 10).
            await error_response(NotFound("no such route"))(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        path, root = scope["path"], scope.get("root_path", "")
        found = self.find((path[len(root) :] if root and path.startswith(root) else path) or "/")
        if found is None:
            await _plain(send, 404, b"Not Found")
            return
        name, asset = found
        request = dict(scope["headers"])
        headers = [
            (b"etag", asset.etag),
            (b"cache-control", asset.cache_control),
            (b"vary", b"Accept-Encoding"),
            *[(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()],
        ]
        if name == "sw.js":
            headers.append((b"service-worker-allowed", b"/"))
        if asset.etag in [tag.strip() for tag in request.get(b"if-none-match", b"").split(b",")]:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = asset.body
        if asset.gzipped is not None and b"gzip" in request.get(b"accept-encoding", b""):
            body = asset.gzipped
            headers.append((b"content-encoding", b"gzip"))
        headers += [(b"content-type", asset.content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


async def _plain(send: Send, status: int, text: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(text)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": text})
