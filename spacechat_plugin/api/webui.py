"""Serving the bundled web UI (web_ui/): static files with cache headers, the app shell for
every client-side route, and security headers.

Vendored libraries (`/vendor/...`) never change under a name, so they are cached for a year;
everything else revalidates (ETag) so an upgrade shows at the next load. Paths that are not a
file (`/setup`, `/invite`, `/c/...`) get `index.html`, and the client routes them.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
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


class WebUI(StaticFiles):
    def __init__(self, directory: Path | None = None) -> None:
        super().__init__(directory=directory or resource("web_ui"), html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as missing:
            if missing.status_code != 404 or "." in Path(path).name:
                raise
            response = await super().get_response("index.html", scope)
        if path.startswith("vendor/"):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        elif path in ("sw.js", "service-worker.js"):
            response.headers["Cache-Control"] = "no-cache"
            response.headers["Service-Worker-Allowed"] = "/"
        else:
            response.headers["Cache-Control"] = "no-cache"
        if isinstance(response, FileResponse) or response.status_code in (200, 304):
            response.headers.update(SECURITY_HEADERS)
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise HTTPException(status_code=404)
        path: str = scope["path"]
        if path == "/v1" or path.startswith(("/v1/", "/metrics")):
            # An API path the API's mount could not take (`/v1/channels/a%0Ab`: its pattern stops
            # at a newline) is still the API's: its 404 is JSON, never the UI's (issue 10).
            await error_response(NotFound("no such route"))(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
