"""What the routes may use: the services, as the composition root hands them over.

A Protocol, so that api/ depends on this list and not on app.py (which builds the services and
imports the API to mount it). Routes are the outermost layer: they may call every service, and
they reach the agents only through the HostAPI (`host`).
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from ..agents.activity import Activity
from ..agents.approvals import Approvals
from ..agents.delivery import Delivery
from ..agents.replies import ReplyStreams
from ..agents.task_mirror import TaskMirror
from ..cards.service import CardService
from ..config import Settings
from ..hookspecs import HostAPI, PluginHooks
from ..identity.auth import Authenticator
from ..identity.permissions import Access
from ..identity.sso import SingleSignOn
from ..instance import Instance
from ..memory.service import Memory
from ..notifications.service import Notifier
from ..operations.budgets import Budgets
from ..operations.incidents import Incidents
from ..operations.loop_lag import LoopLag
from ..operations.observability import Observability
from ..operations.ops import Ops
from ..operations.telemetry import Telemetry
from ..presence.service import Presence
from ..realtime.bus import Bus
from ..realtime.relay import Relay
from ..realtime.streams import Streams
from ..search.service import SearchService
from ..store.db import Database
from ..voice.service import VoiceService
from ..workers import WorkerContext


class Context(Protocol):
    settings: Settings
    host: HostAPI | None
    data_dir: Path
    files_dir: Path  # attachments/ and voice/ (storage.files_dir)
    instance: Instance
    db: Database
    bus: Bus
    streams: Streams
    gateway_id: str
    relay: Relay | None
    loop_lag: LoopLag  # how late the event loop runs (/metrics)
    worker: WorkerContext | None  # one of `spacechat serve --workers N`'s processes, or None
    access: Access
    auth: Authenticator | None
    sso: SingleSignOn
    cards: CardService
    replies: ReplyStreams
    activity: Activity
    task_mirror: TaskMirror
    incidents: Incidents
    budgets: Budgets
    approvals: Approvals
    observe: Observability
    telemetry: Telemetry | None
    ops: Ops
    delivery: Delivery
    search: SearchService
    hooks: PluginHooks
    notifications: Notifier
    presence: Presence
    memory: Memory
    voice: VoiceService
    inflight_keys: set[tuple[str, str]]

    @property
    def base_url(self) -> str: ...

    @property
    def runs_agents(self) -> bool: ...

    @property
    def gateway_url(self) -> str: ...

    async def newest_seq(self, wanted: int) -> int: ...

    async def caught_up(self) -> None: ...

    def hand_to_agents(
        self, channel: dict[str, Any], thread_id: str, message: dict[str, Any], named: list[str]
    ) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None: ...
