"""Serving the web UI (issue 13): from memory, gzip-compressed, each file's ETag its content hash
(304 while unchanged, re-read when it changes on disk), vendored files immutable, the shell for
client-side routes, security headers on every page."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import httpx

from spacechat_plugin.api.webui import CSP, WebUI

from .browser import WEB_UI
from .support import Server


def test_files_are_compressed_hashed_and_revalidated(shared_server: Server) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        plain = (WEB_UI / "app.js").read_bytes()
        answer = client.get("/app.js", headers={"Accept-Encoding": "gzip"})
        assert answer.status_code == 200 and answer.content == plain  # httpx undoes the gzip
        assert answer.headers["content-encoding"] == "gzip" and int(answer.headers["content-length"]) < len(plain) / 2
        assert answer.headers["etag"] == f'"{hashlib.sha256(plain).hexdigest()[:32]}"'
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
        again = client.get("/app.js", headers={"If-None-Match": answer.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        identity = client.get("/app.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in identity.headers and identity.content == plain
        vendored = client.get("/vendor/preact-11.2.0/preact.mjs")
        assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
        worker = client.get("/sw.js")
        assert worker.headers["service-worker-allowed"] == "/"
        shell = client.get("/c/some-channel")
        assert shell.status_code == 200 and b'<script type="module" src="/app.js">' in shell.content
        assert shell.headers["content-security-policy"] == CSP and shell.headers["x-frame-options"] == "DENY"
        assert client.get("/missing.js").status_code == 404
        assert client.get("/%2e%2e/pyproject.toml").status_code == 404
        assert client.post("/app.js").status_code == 405


async def test_a_file_changed_on_disk_is_served_anew(tmp_path: Path) -> None:
    root = tmp_path / "web_ui"
    shutil.copytree(WEB_UI, root, ignore=shutil.ignore_patterns("vendor"))
    app = WebUI(root)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as client:
        first = await client.get("/state.js")
        (root / "state.js").write_text("export const changed = true; // a longer file than before, surely\n" * 50)
        second = await client.get("/state.js")
        assert second.headers["etag"] != first.headers["etag"]
        assert second.text.startswith("export const changed = true;")
