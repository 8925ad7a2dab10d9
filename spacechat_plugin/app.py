"""The running plugin: settings, the store, the bus and the services the API and hooks use.

One `Spacechat` exists per host process while the plugin is enabled. The hook implementations
(plugin.py) and the routes (api/) reach it; it reaches the agents only through the HostAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
from collections.abc import Coroutine, Mapping
from typing import Any

from starlette.requests import HTTPConnection

from .agents.activity import Activity
from .agents.replies import ReplyStreams
from .cards.service import CardService
from .config import ConfigError, Settings
from .events import SYSTEM, Actor, Event, now_rfc3339
from .hookspecs import HostAPI, call_hook, first_hook
from .identity.auth import Authenticator, load_or_create_secret
from .identity.permissions import Access, Principal, event_class
from .operations.incidents import Incidents
from .operations.observability import Observability
from .operations.ops import Ops
from .realtime.bus import Bus, Subscription
from .resources import resource
from .sdk import SpacechatAPI
from .store import identity, tenancy
from .store import log as event_log
from .store import messages as message_store
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
        self.bus = Bus(ring_size=settings.realtime.ring_size, max_lag=settings.realtime.max_lag, classify=event_class)
        self.db.on_commit = self._committed
        self.access = Access()
        self.auth: Authenticator | None = None
        # Open realtime streams by credential and by user, to end them when access ends.
        self.streams: dict[str, set[Subscription]] = {}
        self.replies = ReplyStreams(self)
        self.activity = Activity(self)
        self.cards = CardService(self)
        self.sdk = SpacechatAPI(self)
        self.observe = Observability(self)
        self.incidents = Incidents(self)
        self.ops = Ops(self)
        self.org_id = ""
        # (actor id, idempotency key) of sends in progress: a concurrent duplicate gets 409.
        self.inflight_keys: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[Any]] = []
        self.started_at = now_rfc3339()
        self.bound_url: str | None = None
        self._setup_secret: str | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.data_dir, 0o700)
        self.auth = Authenticator(self, load_or_create_secret(self.data_dir))
        await self.db.open()
        if self.db.applied_now:
            logger.info("applied migrations: %s", ", ".join(self.db.applied_now))
        await self._bootstrap()
        await self._register_agents()
        ended = await self.db.write(message_store.interrupt_open_streams)
        if ended:
            logger.warning("%d agent replies were cut by a restart and marked interrupted", len(ended))
        await self.db.write(lambda tx: event_log.prune(tx, self.settings.storage.retention_days))
        await self.db.write(message_store.prune_idempotency_keys)
        self.access.load(await tenancy.all_channels(self.db), await identity.all_memberships(self.db))
        await self._offer_setup()
        self._load_hook_plugins()
        await self.call_plugins("spacechat_ready")
        self._background = [
            asyncio.create_task(self._heartbeat(), name="spacechat-heartbeat"),
            asyncio.create_task(self.replies.checkpoint_loop(), name="spacechat-checkpoint"),
            asyncio.create_task(self._prune_loop(), name="spacechat-prune"),
        ]

    async def _bootstrap(self) -> None:
        """On first start: the organisation, its first team and channels."""
        org = await tenancy.first_org(self.db)
        if org is not None:
            self.org_id = org["id"]
            return
        seed = self.settings.bootstrap

        def create(tx: WriteTx) -> str:
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
            return str(org["id"])

        self.org_id = await self.db.write(create)

    async def _register_agents(self) -> None:
        """Each agent of the host acts under its own identity (kind `agent`) in the primary
        organisation, and is a member of the channels it is bound to."""
        if self.host is None:
            return
        agents = self.host.agents()
        org_id = self.org_id

        def register(tx: WriteTx) -> None:
            for agent in agents:
                if identity.user_row(tx, agent["id"]) is None:
                    identity.create_user(
                        tx,
                        org_id=org_id,
                        kind="agent",
                        name=agent["name"],
                        role="agent",
                        user_id=agent["id"],
                        actor=SYSTEM,
                    )
                for name in agent.get("channels", []):
                    row = tx.one("SELECT * FROM channels WHERE org_id = ? AND name = ?", (org_id, name))
                    if row is not None:
                        identity.add_member(tx, tenancy.channel_json(row), agent["id"], SYSTEM)

        await self.db.write(register)

    async def _offer_setup(self) -> None:
        """While the organisation has no owner, print a one-time setup link (a new one at every
        start; the old ones stop working). There is no default password, ever."""
        if await identity.any_owner(self.db, self.org_id):
            return
        org_id = self.org_id
        self._setup_secret = await self.db.write(
            lambda tx: identity.create_setup_token(tx, org_id, instance_admin=True)
        )
        if self.bound_url is not None:
            self._print_setup_link()

    def _print_setup_link(self) -> None:
        # Shown on the console only: never logged, stored only as a hash.
        if self._setup_secret is not None:
            print(f"Create the owner account: {self.base_url}/setup#token={self._setup_secret}", flush=True)
            self._setup_secret = None

    def server_started(self, url: str) -> None:
        """The host's server listens at `url`: links are built on it, and the setup link is shown."""
        self.bound_url = url.rstrip("/")
        self._print_setup_link()

    @property
    def base_url(self) -> str:
        """Where people reach us: `public_url` when set, else the address the server bound."""
        return self.settings.public_url or self.bound_url or self.settings.url

    def _committed(self, events: list[Event]) -> None:
        """After each commit, before fan-out: keep the access caches current, so every event
        is filtered by the memberships that hold after it."""
        for event in events:
            kind = event.event_type
            if kind in ("channel.created", "channel.updated"):
                channel = event.payload.channel  # type: ignore[attr-defined]
                self.access.channel_changed(channel)
            elif kind == "member.updated" and self.auth is not None:
                self.auth.forget()  # a role change or a deactivation applies from the next request
            elif kind == "member.added" and event.channel_id:
                self.access.joined(event.payload.user_id, event.channel_id)  # type: ignore[attr-defined]
            elif kind == "member.removed" and event.channel_id:
                self.access.left(event.payload.user_id, event.channel_id)  # type: ignore[attr-defined]
        self._publish_soon(events)

    def _publish_soon(self, events: list[Event]) -> None:
        """Fan out on the loop's next turn, after the tasks just answered by the commit have
        run: a send's 201 does not wait for the fan-out (which may write to every subscriber's
        socket at once). Every publish goes this way, so events keep their order."""
        asyncio.get_running_loop().call_soon(self._publish, events)

    def _publish(self, events: list[Event]) -> None:
        try:
            self.bus.publish(events)
        except Exception:  # a broken subscriber must not stop the fan-out for everyone after
            logger.exception("publishing events failed")

    def subscribe(self, who: Principal, visible: Any) -> Subscription:
        """A bus subscription registered under its credential and user, so ending access ends it."""
        subscription = self.bus.subscribe(visible)
        for key in (who.credential_id, who.user_id):
            if key:
                self.streams.setdefault(key, set()).add(subscription)
        return subscription

    def unsubscribe(self, who: Principal, subscription: Subscription) -> None:
        subscription.close()
        for key in (who.credential_id, who.user_id):
            streams = self.streams.get(key or "")
            if streams is not None:
                streams.discard(subscription)
                if not streams:
                    del self.streams[key or ""]

    def end_streams(self, key: str) -> None:
        """Access ended (a revoked session or token, a deactivated user, a new password): forget
        cached credentials and close the matching realtime streams."""
        if self.auth is not None:
            self.auth.forget()
        for subscription in list(self.streams.pop(key, ())):
            subscription.close()

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
            if self.auth is not None:
                try:
                    await self.auth.flush_seen()
                except Exception:
                    logger.exception("saving sessions' last-seen times failed")

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            try:
                await self.db.write(lambda tx: event_log.prune(tx, self.settings.storage.retention_days))
                await self.db.write(message_store.prune_idempotency_keys)
            except Exception:
                logger.exception("pruning the event log failed")

    # -- hook plugins -------------------------------------------------------------------------

    def _load_hook_plugins(self) -> None:
        """Register the ready-made hook plugins named in `hook_plugins` (files in hooks/)."""
        if not self.settings.hook_plugins:
            return
        if self.host is None:
            raise ConfigError("hook_plugins need a host to register with")
        folder = resource("hooks")
        for name in self.settings.hook_plugins:
            path = folder / f"{name}.py"
            if not path.is_file():
                known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
                raise ConfigError(f"hook_plugins: no hook plugin named {name!r} (there are: {', '.join(known)})")
            spec = importlib.util.spec_from_file_location(f"spacechat_hooks.{name}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if self.host.pm.get_plugin(f"spacechat-hooks.{name}") is None:
                self.host.pm.register(module, name=f"spacechat-hooks.{name}")

    async def call_plugins(self, name: str, **kwargs: Any) -> list[Any]:
        """Call one of Spacechat's own hooks (`spacechat_*`) on every plugin; a failing plugin is
        logged and skipped."""
        if self.host is None:
            return []
        return await call_hook(self.host.pm, name, on_error=_report, spacechat=self.sdk, **kwargs)

    async def first_plugin(self, name: str, **kwargs: Any) -> Any:
        if self.host is None:
            return None
        return await first_hook(self.host.pm, name, on_error=_report, spacechat=self.sdk, **kwargs)

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

    @property
    def channels(self) -> dict[str, dict[str, Any]]:
        """Every channel by id, kept current at each commit (the cache the permission checks use)."""
        return self.access.channels

    async def authenticate(self, conn: HTTPConnection) -> Principal:
        assert self.auth is not None
        return await self.auth.authenticate(conn)

    async def channel(self, channel_id: str) -> dict[str, Any] | None:
        cached = self.channels.get(channel_id)
        if cached is None:
            cached = await tenancy.get_channel(self.db, channel_id)
            if cached is not None:
                self.channels[channel_id] = cached
        return cached

    def agent_actor(self, agent_id: str) -> Actor:
        return Actor("agent", agent_id)

    async def deliver(
        self, channel: dict[str, Any], thread_id: str, message: dict[str, Any], named: list[str]
    ) -> list[str]:
        """Hand a person's message to the host. An agent hears a private channel only when it is a
        member; an agent paused by a budget is skipped, and the thread is told why."""
        if self.host is None:
            return []
        mentions = [m for m in named if not channel["private"] or channel["id"] in self.access.memberships(m)]
        takers = [
            a["id"] for a in self.host.agents() if channel["name"] in a.get("channels", []) or a["id"] in mentions
        ]
        skip = []
        for agent_id in takers:
            refusal = await self.observe.refusal(agent_id)
            if refusal is not None:
                skip.append(agent_id)
                await self.sdk.post(
                    channel["id"],
                    refusal,
                    thread_id=thread_id,
                    blocks=[
                        {
                            "type": "status",
                            "label": f"{agent_id} is paused",
                            "state": "warning",
                            "detail": refusal[:300],
                        }
                    ],
                )
        return await self.host.deliver_message(
            channel=channel, thread_id=thread_id, message=message, mentions=mentions, skip=skip
        )

    async def turn_input(self, reply: Mapping[str, Any]) -> dict[str, Any]:
        """The stored input of the turn behind an agent's reply, for a host that lost the turn (a
        restart): `{agent_id, messages: [{id, text, author}]}`."""
        messages = []
        for message_id in (reply.get("metadata") or {}).get("in_reply_to") or []:
            found = await message_store.get_message(self.db, message_id)
            if found is not None:
                user = await identity.get_user(self.db, found["author"]["id"] or "")
                messages.append(
                    {
                        "id": found["id"],
                        "text": found["text"],
                        "author": user["name"] if user else found["author"]["id"],
                    }
                )
        return {"agent_id": reply["author"]["id"], "messages": messages}

    async def publish_live(self, event: Event) -> None:
        """Fan out a live-only event (a stream delta): no log, no transaction."""
        assert event.live_only
        self._publish_soon([event])


def _report(name: str, impl: Any, error: BaseException) -> None:
    logger.error("hook %s failed in %s", name, impl.plugin_name, exc_info=error)
