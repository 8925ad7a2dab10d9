"""The running plugin: settings, the store, the bus and the services the API and hooks use.

One `Spacechat` exists per host process while the plugin is enabled. The hook implementations
(plugin.py) and the routes (api/) reach it; it reaches the agents only through the HostAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

from starlette.requests import HTTPConnection

from . import auth
from .activity import Activity
from .bus import Bus
from .config import Settings
from .events import SYSTEM, Actor, Event, now_rfc3339
from .hookspecs import HostAPI
from .permissions import SCOPES, Principal
from .replies import ReplyStreams
from .resources import resource
from .store import log as event_log
from .store import messages as message_store
from .store import tenancy
from .store.db import Database, WriteTx

logger = logging.getLogger("spacechat")

PRUNE_EVERY_SECONDS = 3600


class Spacechat:
    def __init__(self, settings: Settings, host: HostAPI | None) -> None:
        self.settings = settings
        self.host = host
        data = settings.data_path
        self.data_dir = data
        self.db = Database(
            data / "spacechat.db",
            migrations=resource("migrations"),
            synchronous=settings.storage.synchronous,
            read_connections=settings.storage.read_connections,
        )
        self.bus = Bus(ring_size=settings.realtime.ring_size, max_lag=settings.realtime.max_lag)
        self.db.on_commit = self.bus.publish
        self.replies = ReplyStreams(self)
        self.activity = Activity(self)
        self.org_id = ""
        self.channels: dict[str, dict[str, Any]] = {}
        # (actor id, idempotency key) of sends in progress: a concurrent duplicate gets 409.
        self.inflight_keys: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[Any]] = []
        self.started_at = now_rfc3339()

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.data_dir, 0o700)
        await self.db.open()
        if self.db.applied_now:
            logger.info("applied migrations: %s", ", ".join(self.db.applied_now))
        await self._bootstrap()
        ended = await self.db.write(message_store.interrupt_open_streams)
        if ended:
            logger.warning("%d agent replies were cut by a restart and marked interrupted", len(ended))
        await self.db.write(lambda tx: event_log.prune(tx, self.settings.storage.retention_days))
        await self.db.write(message_store.prune_idempotency_keys)
        for channel in await tenancy.list_channels(self.db, self.org_id):
            self.channels[channel["id"]] = channel
        self._background = [
            asyncio.create_task(self._heartbeat(), name="spacechat-heartbeat"),
            asyncio.create_task(self.replies.checkpoint_loop(), name="spacechat-checkpoint"),
            asyncio.create_task(self._prune_loop(), name="spacechat-prune"),
        ]

    async def _bootstrap(self) -> None:
        org = await tenancy.first_org(self.db)
        if org is not None:
            self.org_id = org["id"]
            return
        seed = self.settings.bootstrap

        def create(tx: WriteTx) -> tuple[str, str]:
            org = tenancy.create_org(tx, seed.org_name)
            team = tenancy.create_team(tx, org["id"], seed.team_name)
            for channel in seed.channels:
                tenancy.create_channel(
                    tx,
                    org_id=org["id"],
                    team_id=team["id"],
                    name=channel.name,
                    actor=SYSTEM,
                    category=channel.category,
                    topic=channel.topic,
                    private=channel.private,
                )
            secret, _ = auth.create_api_token(tx, org_id=org["id"], name="admin", scopes=list(SCOPES))
            return org["id"], secret

        self.org_id, secret = await self.db.write(create)
        # Shown once, on the console only: never logged, never stored in clear.
        print(f"Spacechat admin token (shown once, keep it safe): {secret}", file=sys.stdout, flush=True)

    def begin_shutdown(self) -> None:
        """End every realtime stream so the server can stop (SSE never ends by itself)."""
        self.bus.close_all()

    async def stop(self) -> None:
        self.begin_shutdown()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.replies.flush()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.db.close()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.realtime.heartbeat_seconds)
            self.bus.tick()

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            try:
                await self.db.write(lambda tx: event_log.prune(tx, self.settings.storage.retention_days))
                await self.db.write(message_store.prune_idempotency_keys)
            except Exception:
                logger.exception("pruning the event log failed")

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run work that outlives a request (handing a message to the host), keeping a
        reference so it is not collected, and logging its failure."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("%s failed", name, exc_info=finished.exception())

        task.add_done_callback(done)

    # -- services -----------------------------------------------------------------------------

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        return await auth.authenticate(self.db, conn)

    async def channel(self, channel_id: str) -> dict[str, Any] | None:
        cached = self.channels.get(channel_id)
        if cached is None:
            cached = await tenancy.get_channel(self.db, channel_id)
            if cached is not None:
                self.channels[channel_id] = cached
        return cached

    def remember_channel(self, channel: dict[str, Any]) -> None:
        self.channels[channel["id"]] = channel

    def agent_actor(self, agent_id: str) -> Actor:
        return Actor("agent", agent_id)

    async def publish_live(self, event: Event) -> None:
        """Fan out a live-only event (a stream delta): no log, no transaction."""
        assert event.live_only
        self.bus.publish([event])
