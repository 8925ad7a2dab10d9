"""A realtime listener for tests: one person's SSE stream read in the background, every event
kept, and a way to wait for the one a test expects (no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from .support import Server

Predicate = Callable[[dict[str, Any]], bool]


class Listener:
    def __init__(self, server: Server, headers: dict[str, str]) -> None:
        self.server, self.headers = server, headers
        self.events: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._read())
        async with asyncio.timeout(20):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.url, headers=self.headers, timeout=None) as client:
            async with aconnect_sse(client, "GET", "/v1/realtime/sse") as source:
                assert source.response.status_code == 200, source.response.status_code
                async for event in source.aiter_sse():
                    if event.event == "ready":
                        self._ready.set()
                    elif event.event == "message":
                        self.events.append(json.loads(event.data))
                        self._changed.set()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]

    def mark(self) -> int:
        """Where the stream stands now: `wait_for(..., after=mark)` looks only at what comes next."""
        return len(self.events)

    async def wait_for(self, predicate: Predicate, timeout: float = 20, after: int = 0) -> dict[str, Any]:
        """The first event from position `after` on (seen so far or to come) that matches."""
        try:
            return await self._wait_for(predicate, timeout, after)
        except TimeoutError:
            raise AssertionError(
                f"no such event in {timeout} s; got {[e['event_type'] for e in self.events]}"
            ) from None

    async def _wait_for(self, predicate: Predicate, timeout: float, after: int) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                found = next((e for e in self.events[after:] if predicate(e)), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()
