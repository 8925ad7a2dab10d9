"""A test's own HTTP server on loopback: an ASGI app under uvicorn, in a thread of its own, on a
free port (the AG-UI agent, the OpenID provider)."""

from __future__ import annotations

import threading

import uvicorn
from starlette.types import ASGIApp


class ThreadedServer:
    def __init__(self, app: ASGIApp, name: str, config: uvicorn.Config | None = None) -> None:
        """`config`, when given, is the whole of uvicorn's configuration (its port 0 for a free one)."""
        self.name = name
        config = config or uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self) -> str:
        """Serve; the base URL (`http://127.0.0.1:<port>`) once it listens."""
        self._thread.start()
        for _ in range(500):
            if self._server.started and self._server.servers:
                port = self._server.servers[0].sockets[0].getsockname()[1]
                return f"http://127.0.0.1:{port}"
            threading.Event().wait(0.01)
        raise RuntimeError(f"the {self.name} did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
