"""The composition root: builds the store, the bus and the services, wires them, starts and stops
them. No logic of its own: each service is given the few collaborators it uses (STYLE.md 14),
and the hook-implementing services are registered with the host as plugins of their own.

One `Spacechat` exists per host process while the plugin is enabled. The routes (api/) see it
through the `api.context.Context` protocol; it reaches the agents only through the HostAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import workers
from .agents.activity import Activity
from .agents.approvals import Approvals
from .agents.delivery import Delivery
from .agents.replies import ReplyStreams
from .agents.task_mirror import TaskMirror
from .api import route_scopes
from .cards.service import CardService
from .config import ConfigError, Settings
from .events import CredentialRevoked, Event
from .hookspecs import HostAPI, PluginHooks
from .identity import bootstrap
from .identity.auth import Authenticator, load_or_create_secret
from .identity.permissions import Access, event_rules
from .identity.sso import SingleSignOn
from .instance import Instance
from .memory.ingest import Ingest
from .memory.service import Memory
from .notifications.service import Notifier
from .operations import telemetry
from .operations.budgets import Budgets
from .operations.incidents import Incidents
from .operations.loop_lag import LoopLag
from .operations.observability import Observability
from .operations.ops import Ops
from .presence.service import REPORT as PRESENCE_REPORT
from .presence.service import SYNC as PRESENCE_SYNC
from .presence.service import Presence
from .realtime.bus import Bus
from .realtime.relay import Relay
from .realtime.streams import Streams
from .resources import resource
from .sdk import SpacechatAPI, load_hook_plugins
from .search.service import SearchService
from .store import audit, identity, tenancy
from .store import backend as store_backend
from .store import chat as chat_store
from .store import lock as data_dir_lock
from .store import log as event_log
from .store import messages as message_store
from .store.anchor import AuditAnchor
from .store.lease import FileLease, Lease
from .voice.service import VoiceService

logger = logging.getLogger("spacechat")


async def _nothing() -> None:
    pass


PRUNE_EVERY_SECONDS = 3600
# The services that implement host hooks themselves; each is registered as a plugin at start-up.
HOOK_SERVICES: tuple[type, ...] = (
    ReplyStreams,
    Activity,
    Observability,
    TaskMirror,
    Ingest,
    telemetry.Telemetry,
    VoiceService,
)


def _report(name: str, impl: Any, error: BaseException) -> None:
    logger.error("hook %s failed in %s", name, impl.plugin_name, exc_info=error)


class Spacechat:
    def __init__(self, settings: Settings, host: HostAPI | None) -> None:
        self.settings = settings
        self.host = host
        self.data_dir = settings.data_path
        self.files_dir = settings.files_path  # attachments/ and voice/: shared by every gateway
        self.instance = Instance(configured_url=settings.url, public_url=settings.public_url or None)
        # One of the worker processes of `spacechat serve --workers` (workers.py), or None.
        self.worker = workers.current
        self.db = store_backend.database(
            settings.storage.url,
            self.data_dir,
            migrations=resource("migrations"),
            synchronous=settings.storage.synchronous,
            read_connections=settings.storage.read_connections,
            shared=self.worker is not None,
        )
        # A realtime event reaches whoever the matching REST read would answer (issue 10).
        self.access = Access(event_rules(route_scopes()))
        self.bus = Bus(
            ring_size=settings.realtime.ring_size,
            max_lag=settings.realtime.max_lag,
            classify=self.access.event_class,
            stall_seconds=settings.realtime.stall_seconds,
        )
        self.streams = Streams(self.bus)
        # Several gateways on one database share a bus (issue 17): commits reach the local
        # fan-out through the relay, in seq order with every other gateway's.
        # So do the worker processes of one machine, over their supervisor's hub.
        self.gateway_id = settings.gateway_id
        bus_url = settings.bus.url
        if self.worker is not None:
            self.gateway_id = f"{settings.gateway_id}-w{self.worker.index}"
            bus_url = self.worker.bus_url
        self.relay: Relay | None = None
        if bus_url:
            self.relay = Relay(
                url=bus_url,
                gateway_id=self.gateway_id,
                read_after=self._log_after,
                log_head=self._log_head,
                deliver=self._committed,
                deliver_live=self.streams.publish_live,
                on_control=self._control,
                subject=settings.bus.subject,
                gap_wait=settings.bus.gap_wait_ms / 1000,
                poll_seconds=settings.bus.poll_ms / 1000,
                heartbeat_seconds=settings.gateway.heartbeat_seconds,
                describe=lambda: {
                    "runs_agents": self.runs_agents,
                    "subscribers": self.bus.subscriber_count,
                    "url": self.gateway_url,
                },
            )
            self.db.on_commit = self._committed_here
        else:
            self.db.on_commit = self._committed
        # Agents, and the sweeps that must run once per installation, run in the one gateway that
        # holds the lease (issue 17); without a bus there is one process, and it runs them.
        self.lease: Lease | None = None
        lease_dsn = settings.storage.url
        if self.worker is not None:  # the workers of one machine: a file lock in the data directory
            self.lease = FileLease(
                self.data_dir / "agents.lease",
                on_acquired=self._lease_acquired,
                on_lost=self._lease_lost,
                retry_seconds=settings.gateway.lease_retry_seconds,
            )
        elif self.relay is not None and lease_dsn.startswith(("postgresql://", "postgres://")):
            self.lease = Lease(
                lease_dsn,
                "spacechat.agents",
                on_acquired=self._lease_acquired,
                on_lost=self._lease_lost,
                retry_seconds=settings.gateway.lease_retry_seconds,
            )
        # On Postgres without a bus there must be one gateway (it runs the agents and sees only
        # its own commits): a second one on the same database is refused at start.
        self.sole: Lease | None = None
        if self.relay is None and lease_dsn.startswith(("postgresql://", "postgres://")):
            self.sole = Lease(
                lease_dsn, "spacechat.sole-gateway", on_acquired=_nothing, on_lost=_nothing, retry_seconds=0.2
            )
        self._singleton_tasks: list[asyncio.Task[Any]] = []
        self.audit_anchor = AuditAnchor(self.data_dir)
        self.db.on_audit = self.audit_anchor.record
        self.auth: Authenticator | None = None
        self.sso = SingleSignOn(self.db)
        self.hooks = PluginHooks(host.pm if host is not None else None, on_error=_report)

        self.cards = CardService(self.db, host, self.hooks)
        self.replies = ReplyStreams(self.db, self.access, self.publish_live, settings.realtime.checkpoint_ms)
        self.activity = Activity(self.db, self.access, self.instance, self.cards)
        self.task_mirror = TaskMirror(self.db, self.access, self.instance, self.cards, host)
        self.cards.remote = self.task_mirror
        self.incidents = Incidents(self.db, self.access, settings.ops, settings.incidents)
        self.budgets = Budgets(
            db=self.db,
            settings=settings,
            instance=self.instance,
            access=self.access,
            host=host,
            cards=self.cards,
            incidents=self.incidents,
        )
        self.observe = Observability(
            db=self.db,
            settings=settings,
            instance=self.instance,
            access=self.access,
            replies=self.replies,
            incidents=self.incidents,
            budgets=self.budgets,
        )
        self.approvals = Approvals(
            db=self.db,
            access=self.access,
            settings=settings.approvals,
            always_tools=list(settings.hooks.get("tool_approval", {}).get("tools", [])),
            cards=self.cards,
            host=host,
            runs_agents=lambda: self.runs_agents,
        )
        self.approvals.relayed = self.relay is not None
        self.ops = Ops(
            db=self.db,
            settings=settings.ops,
            host=host,
            access=self.access,
            cards=self.cards,
            runs_agents=lambda: self.runs_agents,
        )
        self.cards.handlers.extend([self.ops, self.incidents, self.approvals])
        self.delivery = Delivery(
            host, self.access, self.cards, self.budgets, self.instance, runs_agents=lambda: self.runs_agents
        )
        self.memory = Memory(self.db, self.access, self.instance, host, settings.memory, self.files_dir)
        self.search = SearchService(self.db, self.access)
        self.voice = VoiceService(
            settings, self.db, self.access, self.replies, self.delivery, self.spawn, one_process=self.lease is None
        )
        self.sdk = SpacechatAPI(
            db=self.db,
            settings=settings,
            instance=self.instance,
            access=self.access,
            host=host,
            cards=self.cards,
            activity=self.activity,
            incidents=self.incidents,
            approvals=self.approvals,
        )
        self.hooks.sdk = self.sdk
        agent_names = {a["id"]: a["name"] for a in host.agents()} if host is not None else {}
        self.telemetry = telemetry.build(settings.telemetry, agent_names)
        self.notifications = Notifier(self.db, self.access, self.streams)
        # Each gateway sends its own streams the whole picture; the gateways share their parts
        # over the bus (presence/service.py), so presence and typing are not relayed as events.
        self.presence = Presence(self.streams.publish_live_many)
        if self.relay is not None:
            relay = self.relay
            self.presence.gateway_id = self.gateway_id
            self.presence.share = relay.control
            self.presence.alive = lambda: {g["id"] for g in relay.gateways() if g["alive"]}

        # (actor id, idempotency key) of sends in progress: a concurrent duplicate gets 409.
        self.inflight_keys: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.loop_lag = LoopLag()
        self._background: list[asyncio.Task[Any]] = []
        self._registered: list[str] = []
        self._setup_secret: str | None = None
        self._lock: Path | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start, or fail having closed whatever was opened (issue 10: a failed start left the
        database threads running and the process hanging)."""
        # One server per data directory, locked before anything in it is read or written (the
        # supervisor of several workers holds it for them all).
        if self.worker is None:
            self._lock = data_dir_lock.acquire(self.data_dir)
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise

    async def _start(self) -> None:
        with contextlib.suppress(OSError):
            os.chmod(self.data_dir, 0o700)
        if self.relay is None:
            self.auth = Authenticator(self.db, self.access, self.settings, load_or_create_secret(self.data_dir))
        if self.sole is not None and not await self.sole.take_within(5):
            raise ConfigError(
                "another Spacechat gateway runs on this database without a bus: several gateways need "
                "bus.url, the same on each (docs/deployment.md, Several gateways)"
            )
        await self.db.open()
        if self.relay is not None:
            # Every gateway signs and reads sessions with the one secret kept in the database.
            candidate = secrets.token_hex(32)
            secret = await self.db.write(lambda tx: identity.shared_secret(tx, candidate))
            self.auth = Authenticator(self.db, self.access, self.settings, bytes.fromhex(secret))
            self.auth.share = self.relay.control
            if self.worker is not None:  # one file: revocations are seen through it at once
                self.auth.revocations = self.db.revocation_mark
            self.notifications.share = self.relay.control
            self.sso.share = self.relay.control
        if self.db.applied_now:
            logger.info("applied migrations: %s", ", ".join(self.db.applied_now))
        self.audit_anchor.catch_up(await audit.head(self.db))
        self.instance.org_id = await bootstrap.primary_org(self.db, self.settings.bootstrap)
        self.instance.agent_orgs = await bootstrap.agent_orgs(self.db, self.instance.org_id, self.settings.agents)
        if self.host is not None:
            await bootstrap.register_agents(self.db, self.instance.org_id, self.instance.agent_orgs, self.host.agents())
        await self.db.write(chat_store.assign_missing_handles)
        if self.lease is None:
            await self._interrupt_open_streams()
            await self._prune()
        self.access.load(await tenancy.all_channels(self.db), await identity.all_memberships(self.db))
        await self.notifications.load()
        await self._setup_link()
        await self.memory.start()
        self._register_plugins()
        await self.voice.start()
        await self.hooks.call("spacechat_ready")
        if self.relay is not None:
            await self.relay.start(after_seq=await self._log_head())
        self._background = [
            asyncio.create_task(self._heartbeat(), name="spacechat-heartbeat"),
            asyncio.create_task(self.replies.checkpoint_loop(), name="spacechat-checkpoint"),
            asyncio.create_task(self.notifications.run(), name="spacechat-notifications"),
            asyncio.create_task(self.presence.run(), name="spacechat-presence"),
            asyncio.create_task(self.loop_lag.run(), name="spacechat-loop-lag"),
        ]
        if self.lease is None:
            self._start_singletons()
        else:
            self.lease.start()

    def _start_singletons(self) -> None:
        """The loops that must run once per installation, not once per gateway."""
        self._singleton_tasks = [
            asyncio.create_task(self._prune_loop(), name="spacechat-prune"),
            asyncio.create_task(self.approvals.sweep_loop(), name="spacechat-approvals"),
            asyncio.create_task(self.incidents.sweep_loop(), name="spacechat-incident-reminders"),
        ]

    async def _interrupt_open_streams(self) -> None:
        ended = await self.db.write(message_store.interrupt_open_streams)
        if ended:
            logger.warning("%d agent replies were cut by a restart and marked interrupted", len(ended))

    async def _lease_acquired(self) -> None:
        """This gateway now runs the agents: whatever reply was still open was cut when the last
        holder died (only the holder streams replies), so it ends as `interrupted`, as after a
        restart of the one process; then the sweeps start here."""
        await self._interrupt_open_streams()
        await self._prune()
        self._start_singletons()
        if self.relay is not None:  # the others forward operations on the agents here from now on
            self.relay.announce()

    async def _lease_lost(self) -> None:
        """Another gateway may take the agents over: stop handing them messages, and stop the
        sweeps here (the turns already under way end as their host ends them)."""
        tasks, self._singleton_tasks = self._singleton_tasks, []
        for task in tasks:
            task.cancel()
        if self.relay is not None:
            self.relay.announce()

    @property
    def runs_agents(self) -> bool:
        """Whether this process hands messages to its host's agents now."""
        return self.lease is None or self.lease.held

    def hand_to_agents(
        self, channel: dict[str, Any], thread_id: str, message: dict[str, Any], named: list[str]
    ) -> None:
        """A person posted through this gateway: with one process, hand it to the agents now;
        with several, the lease holder does when the message reaches it (`_committed`), so it
        is handed over exactly once whichever gateway took it."""
        if self.lease is None:
            self.spawn(self.delivery.deliver(channel, thread_id, message, named), name=f"deliver {message['id']}")

    def _deliver_from_log(self, events: list[Event]) -> None:
        """The lease holder hands every person's new message to the agents, whichever gateway
        took it (issue 17)."""
        if self.lease is None or not self.lease.held or self.host is None:
            return
        for event in events:
            if event.event_type == "voice.memo.transcribed":
                memo: dict[str, Any] = event.payload.memo  # type: ignore[attr-defined]
                text = str(event.payload.transcript.get("text") or "")  # type: ignore[attr-defined]
                self.spawn(self.voice.deliver_transcribed(memo, text), name=f"deliver memo {memo['id']}")
                continue
            if event.event_type != "message.created" or event.actor.kind != "user" or event.channel_id is None:
                continue
            channel = self.access.channels.get(event.channel_id)
            message: dict[str, Any] = event.payload.message  # type: ignore[attr-defined]
            if channel is None or message.get("thread_id") is None or (message.get("metadata") or {}).get("voice"):
                continue  # a voice memo goes to the agents once transcribed, by the voice service
            named = chat_store.mention_names(str(message.get("text") or ""))
            self.spawn(
                self.delivery.deliver(channel, message["thread_id"], message, named), name=f"deliver {message['id']}"
            )

    def _register_plugins(self) -> None:
        """The services that implement hooks are plugins of their own (as datasette registers its
        built-ins), then the ready-made hook plugins named in `hook_plugins`."""
        if self.host is None:
            load_hook_plugins(None, self.settings.hook_plugins)
            return
        pm = self.host.pm
        services: list[Any] = [
            self.replies,
            self.activity,
            self.observe,
            self.task_mirror,
            self.memory.ingest,
            self.voice,
        ]
        if self.telemetry is not None:
            services.append(self.telemetry)
            for handler in logging.getLogger().handlers:
                handler.addFilter(self.telemetry.log_filter())
        for service in services:
            assert type(service) in HOOK_SERVICES
            name = f"spacechat.{type(service).__name__}"
            if pm.get_plugin(name) is None:
                pm.register(service, name=name)
                self._registered.append(name)
        load_hook_plugins(pm, self.settings.hook_plugins)

    async def _setup_link(self) -> None:
        """While there is no owner, a one-time link to create one (made by the first worker
        only: a new link voids the last)."""
        if self.worker is None or self.worker.index == 0:
            self._setup_secret = await bootstrap.setup_secret(self.db, self.instance.org_id)
        if self.instance.bound_url is not None:
            self._print_setup_link()

    def _print_setup_link(self) -> None:
        # Shown on the console only: never logged, stored only as a hash.
        if self._setup_secret is not None:
            print(f"Create the owner account: {self.base_url}/setup#token={self._setup_secret}", flush=True)
            self._setup_secret = None

    def server_started(self, url: str) -> None:
        """The host's server listens at `url`: links are built on it, and the setup link is shown."""
        self.instance.bound_url = url.rstrip("/")
        self._print_setup_link()

    @property
    def base_url(self) -> str:
        return self.instance.base_url

    async def newest_seq(self, wanted: int) -> int:
        """The newest seq in the log, as far as `wanted` needs it: what this process knows, or,
        with several gateways, read from the log when a client brings a seq committed elsewhere
        that has not reached this gateway yet (a cursor from the gateway it was on)."""
        seq = self.db.last_seq
        if wanted > seq and self.relay is not None:
            seq = max(seq, await event_log.head(self.db))
        return seq

    async def caught_up(self) -> None:
        """The read barrier of several gateways (and workers): before a request is served, this
        gateway has delivered every event the log held when it arrived, so its access caches,
        streams and notifications reflect every write acknowledged before it, by any gateway
        (Relay.caught_up). The log's head comes from shared memory with `--workers` (no query),
        from the database otherwise."""
        relay, wait = self.relay, self.settings.bus.read_wait_ms
        if relay is None or not wait:
            return
        head = self.db.committed_head()
        if head is None:
            try:
                head = await event_log.head(self.db)
            except Exception as exc:  # the database is unwell: answer with what is known here
                logger.warning("the read barrier could not read the log's head: %s", exc)
                return
        if head > relay.delivered:
            await relay.caught_up(head, within=wait / 1000)

    @property
    def gateway_url(self) -> str:
        """Where the other gateways reach this one: `gateway.url`, else the address the server
        bound (a wildcard host read as loopback)."""
        if self.settings.gateway.url:
            return self.settings.gateway.url
        if self.worker is not None:  # the shared port could land on any worker: its own socket
            return self.worker.own_url
        bound = urlsplit(self.instance.bound_url or self.instance.configured_url)
        host = bound.hostname or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        netloc = f"[{host}]" if ":" in host else host
        return f"{bound.scheme or 'http'}://{netloc}:{bound.port or self.settings.port}"

    def _committed(self, events: list[Event]) -> None:
        """After each commit, before fan-out: keep the access caches current, so every event is
        filtered by the memberships that hold after it; a role change or a deactivation applies
        from the next request."""
        if self.relay is not None:  # any gateway's commits, in seq order: where the log stands
            for event in reversed(events):
                if event.seq is not None:
                    self.db.saw(event.seq)
                    break
        self.access.apply(events)
        self.memory.committed(events)
        self._access_changed(events)
        self.streams.publish_soon(events)
        if self.relay is not None:  # what is waited for here may have been decided on another gateway
            self.cards.observe_relayed(events)
            self.approvals.observe_relayed(events)
        self._deliver_from_log(events)
        self.replies.observe(events)
        self.notifications.observe(events)
        self.presence.observe(events)

    def _access_changed(self, events: list[Event]) -> bool:
        """A role or deactivation (`member.updated`) or a revoked credential
        (`credential.revoked`) among committed events: forget the cached credentials, so the
        next request reads its row afresh, and close the streams opened under the revoked keys.
        Every gateway does this when the event reaches it, in its place in the log (which the
        read barrier waits for); True when any credential was revoked."""
        revoked = changed = False
        for event in events:
            payload = event.payload
            if isinstance(payload, CredentialRevoked):
                revoked = True
                for key in payload.keys:
                    self.streams.end(key)
            elif payload.event_type == "member.updated":
                changed = True
        if (revoked or changed) and self.auth is not None:
            self.auth.forget()
        return revoked

    # -- several gateways (issue 17) ------------------------------------------------------------

    def _committed_here(self, events: list[Event]) -> None:
        """A batch this gateway committed, with a bus: the access caches learn it at once, so
        this gateway's next request sees its own write (a channel just made can be posted in);
        the fan-out waits for the relay, which hands every gateway's events over in seq order
        (and applies them to the caches again, in that order)."""
        self.access.apply(events)
        if self._access_changed(events):
            self.db.credentials_revoked()  # the other workers (one SQLite file) forget theirs at once
        assert self.relay is not None
        self.relay.committed(events)

    def publish_live(self, event: Event) -> None:
        """A live-only event made here (a reply's delta, typing): to this gateway's streams,
        and to the other gateways'."""
        self.streams.publish_live(event)
        if self.relay is not None:
            self.relay.live(event)

    def _control(self, kind: str, data: dict[str, Any]) -> None:
        """What another gateway asks every gateway to do."""
        auth = self.auth
        if auth is not None and kind == "login_failed":
            auth.login_failed(str(data.get("email")), str(data.get("address")), share=False)
        elif auth is not None and kind == "login_succeeded":
            auth.login_succeeded(str(data.get("email")), share=False)
        elif kind == "sso_started" and isinstance(data.get("address"), str):
            self.sso.started(data["address"], share=False)
        elif kind == PRESENCE_SYNC:
            self.presence.heard(data)
        elif kind == PRESENCE_REPORT and data.get("status") in ("active", "away"):
            user_id, org_id, credential = str(data["user_id"]), str(data["org_id"]), str(data["credential"])
            self.presence.report(user_id, org_id, credential, data["status"])
        elif kind == "notification_level":
            self.notifications.remember(str(data.get("user_id")), str(data.get("channel_id")), str(data.get("level")))

    async def _log_after(self, seq: int) -> list[bytes]:
        return [logged.body for logged in await event_log.read_after(self.db, seq)]

    async def _log_head(self) -> int:
        return int(await event_log.head(self.db))

    def begin_shutdown(self) -> None:
        """End every realtime stream so the server can stop (SSE never ends by itself); replies
        the host cuts from now on were interrupted by the stop."""
        self.replies.stopping = True
        self.bus.close_all()

    async def stop(self) -> None:
        self.begin_shutdown()
        if self.relay is not None:
            await self.relay.stop()
        await self._cancel_background()
        self._unregister_plugins()
        await self.replies.flush()
        if self._tasks:  # hand-offs to the host under way (deliveries): brief, but let them end
            await asyncio.wait(self._tasks, timeout=1)
        await self._close()

    async def _cancel_background(self) -> None:
        if self.lease is not None:
            await self.lease.stop()
        if self.sole is not None:
            await self.sole.stop()
        tasks = [*self._background, *self._singleton_tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._background, self._singleton_tasks = [], []

    def _unregister_plugins(self) -> None:
        if self.host is not None:
            for name in self._registered:
                self.host.pm.unregister(name=name)
        self._registered = []

    async def _close(self) -> None:
        """Close what start opened, whatever it got to: the background tasks, the hook plugins,
        the database (its threads keep a process alive), and last the data directory's lock."""
        try:
            if self.relay is not None:
                await self.relay.stop()
            await self.memory.stop()
            await self.voice.stop()
            await self.sso.close()
            await self._cancel_background()
            self._unregister_plugins()
            if self.telemetry is not None:
                self.telemetry.shutdown()
            await self.db.close()
        finally:
            if self._lock is not None:
                data_dir_lock.release(self._lock)
                self._lock = None

    async def _heartbeat(self) -> None:
        while True:
            # Twice per heartbeat_seconds: a stream is sent a heartbeat on a tick that finds it
            # idle since the tick before (Subscription.beat_due), so none is silent for longer.
            await asyncio.sleep(self.settings.realtime.heartbeat_seconds / 2)
            self.bus.tick()
            if self.auth is not None:
                try:
                    await self.auth.flush_seen()
                except Exception:
                    logger.exception("saving sessions' last-seen times failed")

    async def _prune(self) -> None:
        await self.db.write(lambda tx: event_log.prune(tx, self.settings.storage.retention_days))
        await self.db.write(message_store.prune_idempotency_keys)

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            try:
                await self._prune()
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
