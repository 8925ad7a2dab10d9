"""Serving: the host's Starlette app with every plugin's routes, run by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Generator, Sequence
from typing import Any

import pluggy
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from .. import __version__, hookspecs
from .fastpath import offer_direct_write

log = logging.getLogger("spacechat.host.server")


def plugin_manager(extra: Sequence[Any] = ()) -> pluggy.PluginManager:
    """A plugin manager with the hookspecs, every installed `spacebot` entry point, and `extra`."""
    pm = pluggy.PluginManager("spacebot")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("spacebot")
    for plugin in extra:
        if not pm.is_registered(plugin):
            pm.register(plugin)
    return pm


async def healthz(request: Request) -> JSONResponse:
    """The host's own liveness probe (the plugin's richer health is under /v1)."""
    return JSONResponse({"status": "ok", "version": __version__})


def build_app(plugin_routes: list[BaseRoute]) -> Starlette:
    return Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *plugin_routes])


class HostServer(uvicorn.Server):
    """uvicorn, telling plugins when it starts stopping (so event streams end) and reporting
    the address it really bound (port 0 picks a free one)."""

    def __init__(
        self, config: uvicorn.Config, *, on_started: Callable[[str], None], on_stopping: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_stopping = on_stopping

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            self._on_started(f"http://{shown}:{port}")

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn re-raises a caught SIGTERM once it has stopped serving, and the default action
        then kills the process before the host and the plugin stop (replies flushed, the database
        closed, the data directory unlocked). Forget the signal instead: the caller stops them and
        the process ends normally (issue 10)."""
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        try:
            self._on_stopping()
        except Exception:
            log.exception("a plugin failed while the server was stopping")
        await super().shutdown(sockets)


def http_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol, letting go of what a connection leaves at once.

    uvicorn cancels an idle connection's keep-alive timer only when it closes cleanly: after a
    reset (a client killed, a proxy purging its pool) the timer holds the protocol, its last
    request cycle, scope and headers until it fires, `keep_alive_seconds` later. With a timeout
    longer than a client's pool expiry (below) that is many seconds of every reset connection;
    cancelled here, it goes with the connection. Without httptools, uvicorn's own choice."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
        return "auto"

    class HttpProtocol(HttpToolsProtocol):
        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.timeout_keep_alive_task is not None:
                self.timeout_keep_alive_task.cancel()
                self.timeout_keep_alive_task = None

        def handle_websocket_upgrade(self) -> None:
            """The WebSocket protocol takes the connection over; this one is done with. Its
            parser calls back into it, a reference cycle that kept ~22 objects of every
            WebSocket's handshake for the garbage collector: broken here, they go now."""
            super().handle_websocket_upgrade()
            self.parser = None  # type: ignore[assignment]

    return HttpProtocol


def uvicorn_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    log_level: str,
    ws_per_message_deflate: bool = False,
    trusted_proxies: Sequence[str] = ("127.0.0.1", "::1"),
    keep_alive_seconds: int = 75,
) -> uvicorn.Config:
    return uvicorn.Config(
        offer_direct_write(app),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # logs.py configures logging once, for everything
        access_log=False,
        lifespan="off",
        http=http_protocol(),
        # An idle keep-alive connection is closed after this long: longer than the pools of the
        # clients that reuse one (httpx 5 s, aiohttp 15 s, nginx's upstream 60 s, cloud load
        # balancers 60 s). uvicorn's 5 s equalled httpx's: a client reusing a connection idle just
        # under 5 s by its clock met the server's close (its clock starts a moment earlier) and
        # its request failed unanswered (a POST is not retried).
        timeout_keep_alive=keep_alive_seconds,
        # In-flight requests get this long once every realtime stream has been ended; the whole
        # stop (the host, the plugin, the database) fits in 5 s (issue 10).
        timeout_graceful_shutdown=3,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        # Off unless realtime.ws_per_message_deflate: a compressed WebSocket's frames are its own,
        # so it cannot share the fan-out's bytes or be parked (host/websocket_park.py).
        ws_per_message_deflate=ws_per_message_deflate,
        # Behind the proxy of docs/deployment.md every connection comes from it: the client's
        # address (per-address sign-in limits, the audit) is its X-Forwarded-For, believed only
        # from `trusted_proxies` (this machine by default). Without it twenty failed sign-ins
        # from anyone locked everyone out.
        proxy_headers=True,
        forwarded_allow_ips=list(trusted_proxies),
    )
