"""What a channel process and its workers use of the embedded host, and of each other.

The host (host.py) builds channel processes (turns.py), which run workers (workers.py). Each of
them needs a little of the one above it; these protocols say how little, so the imports point
one way: host -> turns -> workers -> runtime, and nothing points back up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ...config import AgentConfig, Settings
from ..hooks import HookRunner
from .providers import Provider
from .tools import Tool


@dataclass
class WorkerInfo:
    """A running worker as the host's status shows it."""

    worker_id: str
    agent_id: str
    channel_id: str
    thread_id: str
    task: str
    state: str = "running"
    outcome: str | None = None
    started_at: float = 0.0


class AgentRuntime(Protocol):
    """The embedded host as its channel processes see it."""

    settings: Settings
    hooks: HookRunner
    providers: dict[str, Provider]
    tools: dict[str, Tool]
    workers: dict[str, WorkerInfo]

    async def provider_ok(self, name: str) -> None: ...

    async def provider_failed(self, name: str, detail: str) -> None: ...

    def recall(self, agent_id: str, text: str, limit: int = 5) -> list[dict[str, Any]]: ...

    async def save_memory(self, *, agent_id: str, memory: Mapping[str, Any]) -> str: ...

    async def forget_memory(self, *, agent_id: str, key: str) -> bool: ...

    def expect_answer(self, key: str) -> asyncio.Future[Mapping[str, Any]]: ...


class TurnView(Protocol):
    """A turn in progress as a host that runs whole turns (the AG-UI host) sees it: its ids, and
    the reply it accumulates."""

    base: dict[str, Any]
    text: str
    ttft_ms: int | None

    def elapsed_ms(self) -> int: ...


class ChannelContext(Protocol):
    """A channel process as its workers see it: whose it is, and a way to step aside while a
    worker waits for people."""

    @property
    def host(self) -> AgentRuntime: ...

    @property
    def agent(self) -> AgentConfig: ...

    def park(self, thread_id: str) -> None: ...
