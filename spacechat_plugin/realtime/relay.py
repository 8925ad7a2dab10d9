"""Fan-out between gateways over a shared message bus (NATS), with the log as the truth (issue 17).

Several `spacechat serve` processes (gateways) share one database and one NATS server. After a
batch commits, the gateway that committed it publishes the batch's envelopes on the bus; every
other gateway receives them and hands them to its own fan-out (`deliver`: the local `Bus`,
the access caches, notifications ...) in seq order, each seq once.

The bus is only a fast path. NATS core messages are at most once: a gateway that was
disconnected, or restarted, or whose subscriber fell behind, misses some. So the relay never
trusts the bus to be complete:

- events are held until every lower seq has been delivered; a gap that the bus does not fill
  within `gap_wait` seconds is filled by reading the log after the last seq delivered (the log's
  order is the commit order, so when seq N is committed every lower one is too, and what the
  log returns after the last delivered seq is exactly what is missing);
- while the bus is down, and every `poll_seconds` while it is up, the log's head is compared with
  the last seq delivered, and what is missing is read from the log;
- what arrives twice (from the bus and the log, or a gateway's own commit coming back) is
  dropped by its seq.

A bus outage therefore delays delivery by at most `poll_seconds`; nothing is lost or repeated.
Live-only events (reply deltas, typing) are not in the log: they go over the bus as they come
and a lost one is lost, as a dropped delta is today (the client refetches the message when the
offsets do not meet).

Control messages carry what is not an event but must reach every gateway: a revoked credential
ends its streams everywhere, and cached credentials are forgotten everywhere.

Two barriers let a request read every write acknowledged before it, on whichever gateway it
lands: `caught_up` waits until everything up to the log's head has been delivered here (the
API's every request, app.py), and `synced` waits until every other gateway has answered behind
what it sent before (for presence, which is not in the log).

The relay imports no store, API or service: it is handed a log reader and the local fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..events import Event, UnknownEventType, decode_event, now_rfc3339

log = logging.getLogger("spacechat.relay")
# Control messages that carry ambient state (who is active, who is typing, a page's own report:
# presence/service.py): not counted with the others (`RelayStats.controls`: ended streams, sign-ins).
AMBIENT = frozenset({"presence.sync", "presence.report"})

# Reads the log: the envelopes of the events after a seq, in seq order, at most a page of them.
ReadAfter = Callable[[int], Awaitable[list[bytes]]]


@dataclass
class RelayStats:
    """Counters for /metrics and the health page."""

    published: int = 0  # events this gateway put on the bus
    received: int = 0  # events that came from the bus
    filled: int = 0  # events read from the log because the bus had not brought them
    duplicates: int = 0  # events dropped because their seq was delivered already
    delivered: int = 0  # events handed to the local fan-out
    waited: int = 0  # requests that waited for the relay to catch up (`caught_up`)
    waits_timed_out: int = 0  # ... and went on without it after `bus.read_wait_ms`
    controls: int = 0  # control messages from other gateways (ended streams, sign-in attempts)
    reconnects: int = 0
    connected: bool = False


class Relay:
    def __init__(
        self,
        *,
        url: str,
        gateway_id: str,
        read_after: ReadAfter,
        log_head: Callable[[], Awaitable[int]],
        deliver: Callable[[list[Event]], None],
        deliver_live: Callable[[Event], None],
        on_control: Callable[[str, dict[str, Any]], None],
        subject: str = "spacechat",
        gap_wait: float = 0.025,
        poll_seconds: float = 1.0,
        heartbeat_seconds: float = 5.0,
        describe: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.url = url
        self.gateway_id = gateway_id
        self._read_after = read_after
        self._log_head = log_head
        self._deliver = deliver
        self._deliver_live = deliver_live
        self._on_control = on_control
        self._subjects = {kind: f"{subject}.{kind}" for kind in ("events", "live", "control")}
        self.gap_wait = gap_wait
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self._describe = describe
        self.stats = RelayStats()
        self.started_at = now_rfc3339()
        # Every gateway heard from (this one included): id -> what its last heartbeat said.
        self.peers: dict[str, dict[str, Any]] = {}
        self._heard: dict[str, float] = {}
        # The highest seq handed to the local fan-out; everything up to it was, in order.
        self.delivered = 0
        self._pending: dict[int, Event] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (seq, resolved once delivered)
        self._syncs: dict[str, tuple[set[str], asyncio.Future[None]]] = {}  # token -> (peers to answer, done)
        # Peers that let a sync time out, with when they had last been heard from then: not waited
        # for again until heard from anew (a dead one stays listed for three heartbeats).
        self._unanswered: dict[str, float] = {}
        self._gap_since: float | None = None
        self._outbox: list[tuple[str, bytes]] = []
        self._outbox_ready = asyncio.Event()
        self._filling: asyncio.Task[None] | None = None
        self._fill_again = False
        self._nc: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._started = False

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, after_seq: int) -> None:
        """Deliver what commits after `after_seq` (the log's head when the gateway starts: its
        streams replay anything older from the log themselves). Returns at once even when the
        bus is down: the log carries delivery until it is back."""
        self.delivered = after_seq
        self._started = True
        self._tasks = [
            asyncio.create_task(self._connect_loop(), name="spacechat-relay-connect"),
            asyncio.create_task(self._send_loop(), name="spacechat-relay-send"),
            asyncio.create_task(self._poll_loop(), name="spacechat-relay-poll"),
            asyncio.create_task(self._heartbeat_loop(), name="spacechat-relay-heartbeat"),
        ]

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush_outbox(), timeout=1)
        for task in [*self._tasks, *([self._filling] if self._filling else [])]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

    async def _connect_loop(self) -> None:
        """Connect, retrying until it works (the gateway serves meanwhile, fed by the log); from
        then on the client reconnects by itself, and each reconnect is followed by a catch-up."""
        wait = 0.2
        while not self._stopping:
            try:
                self._nc = await self._open()
            except Exception as exc:
                log.warning("the bus at %s is not reachable (%s); serving from the log", self.url, exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)
                continue
            await self._nc.subscribe(self._subjects["events"], cb=self._on_events)
            await self._nc.subscribe(self._subjects["live"], cb=self._on_live)
            await self._nc.subscribe(self._subjects["control"], cb=self._on_control_message)
            await self._nc.flush()
            self.stats.connected = True
            self._outbox_ready.set()
            self.fill()  # anything committed while we were connecting
            self._greet()
            return

    async def _open(self) -> Any:
        """A connected client: NATS, or the hub of `spacechat serve --workers` (a `unix://`
        URL: realtime/localbus.py, which answers the same calls)."""
        if self.url.startswith("unix://"):
            from . import localbus

            return await localbus.connect(
                self.url, disconnected_cb=self._disconnected, reconnected_cb=self._reconnected
            )
        import nats  # the `scale` extra; imported here so the single-process mode never needs it

        return await nats.connect(
            servers=[self.url],
            name=f"spacechat-{self.gateway_id}",
            no_echo=True,  # our own commits are delivered locally, not through the bus
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=2,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            error_cb=self._error,
        )

    async def _disconnected(self) -> None:
        self.stats.connected = False
        if not self._stopping:
            log.warning("lost the bus; delivering from the log until it is back")

    async def _reconnected(self) -> None:
        self.stats.connected = True
        self.stats.reconnects += 1
        log.info("the bus is back")
        self._outbox_ready.set()
        self.fill()
        self._greet()

    def _greet(self) -> None:
        """Just connected: say who this gateway is, and have every other say so now, rather than
        at their next heartbeat (which gateway runs the agents is known at once)."""
        self.control("gateway.hello", {"id": self.gateway_id})
        self.announce()

    def announce(self) -> None:
        """Tell every gateway how this one is now (its heartbeat, sent early: a lease taken or lost)."""
        self.peers[self.gateway_id] = {**self.alive(), "last_seen": now_rfc3339()}
        self.control("gateway.alive", self.alive())

    async def _error(self, exc: Exception) -> None:
        log.debug("bus client: %s", exc)

    # -- outgoing -----------------------------------------------------------------------------

    def committed(self, events: list[Event]) -> None:
        """A batch this gateway committed: delivered here (in seq order with everyone else's)
        and published for the others."""
        logged = [event for event in events if event.seq is not None]
        if logged:
            # One envelope per line (JSON has no raw newline): each is decoded once on arrival,
            # and its bytes are what every subscriber is sent, as the log holds them.
            self._queue("events", b"\n".join([event.to_json() for event in logged]))
            self.stats.published += len(logged)
            if self._started:  # before, nothing streams here yet: start() begins after the log's head
                self._accept(logged)
        for event in events:
            if event.seq is None:
                self._deliver_live(event)
                self.live(event)

    def live(self, event: Event) -> None:
        """A live-only event made here (a reply's delta, typing), for the other gateways."""
        self._queue("live", event.to_json())

    def control(self, kind: str, data: dict[str, Any]) -> None:
        """Something every gateway must do (end a credential's streams, forget credentials)."""
        self._queue("control", orjson.dumps({"kind": kind, "data": data}))

    def _queue(self, kind: str, body: bytes) -> None:
        self._outbox.append((self._subjects[kind], body))
        self._outbox_ready.set()

    async def _send_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            if self._nc is None or not self.stats.connected:
                # Held until the bus is back; the log covers the events meanwhile, so only the
                # newest are worth keeping (a live delta from minutes ago is no use to anyone).
                del self._outbox[:-1000]
                continue
            try:
                await self._flush_outbox()
            except Exception as exc:  # the other gateways catch up from the log
                log.warning("publishing on the bus failed: %s", exc)

    async def _flush_outbox(self) -> None:
        batch, self._outbox = self._outbox, []
        for subject, body in batch:
            await self._nc.publish(subject, body)

    # -- incoming -----------------------------------------------------------------------------

    async def _on_events(self, msg: Any) -> None:
        try:
            events = [decode_event(body) for body in msg.data.split(b"\n")]
        except (orjson.JSONDecodeError, UnknownEventType, KeyError, TypeError) as exc:
            # A gateway of another version, or a corrupt message: the log has the events.
            log.warning("an undecodable batch on the bus (%s); reading the log instead", exc)
            self.fill()
            return
        self.stats.received += len(events)
        self._accept(events)

    async def _on_live(self, msg: Any) -> None:
        try:
            event = decode_event(msg.data)
        except (orjson.JSONDecodeError, UnknownEventType, KeyError, TypeError) as exc:
            log.debug("an undecodable live event on the bus: %s", exc)
            return
        self._deliver_live(event)

    async def _on_control_message(self, msg: Any) -> None:
        try:
            message = orjson.loads(msg.data)
            if message["kind"] == "gateway.alive":
                self.peers[message["data"]["id"]] = {**message["data"], "last_seen": now_rfc3339()}
                self._heard[message["data"]["id"]] = time.monotonic()
            elif message["kind"] == "gateway.hello":
                self.announce()
            elif message["kind"] == "gateway.sync":  # answered after all this gateway said before
                asker = message["data"]["id"]
                self.control("gateway.synced", {"id": self.gateway_id, "to": asker, "token": message["data"]["token"]})
            elif message["kind"] == "gateway.synced":
                self._synced(message["data"])
            else:
                if message["kind"] not in AMBIENT:
                    self.stats.controls += 1
                self._on_control(message["kind"], message.get("data") or {})
        except Exception:
            log.exception("a control message from the bus failed")

    # -- ordering -----------------------------------------------------------------------------

    def _accept(self, events: Iterable[Event]) -> None:
        """Hold events until every lower seq is in, then deliver them in seq order, once."""
        for event in events:
            assert event.seq is not None
            if event.seq <= self.delivered or event.seq in self._pending:
                self.stats.duplicates += 1
                continue
            self._pending[event.seq] = event
        self._drain()

    def _drain(self) -> None:
        ready: list[Event] = []
        pending, seq = self._pending, self.delivered
        while (event := pending.pop(seq + 1, None)) is not None:
            ready.append(event)
            seq += 1
        if ready:
            self._hand_over(ready)
        if pending and self._gap_since is None:
            # A lower seq is missing: it may still be on its way on the bus, from another
            # gateway; if it is not here within gap_wait, the log has it.
            self._gap_since = time.monotonic()
            asyncio.get_running_loop().call_later(self.gap_wait, self._gap_check, self._gap_since)
        elif not pending:
            self._gap_since = None

    def _gap_check(self, since: float) -> None:
        if self._pending and self._gap_since == since:
            self.fill()

    def _hand_over(self, events: list[Event]) -> None:
        last = events[-1].seq
        assert last is not None
        self.delivered = last
        self.stats.delivered += len(events)
        try:
            self._deliver(events)
        except Exception:  # a broken consumer must not stop delivery of what comes after
            log.exception("delivering relayed events failed")
        if self._waiters:
            waiting = []
            for seq, future in self._waiters:
                if seq <= last:
                    if not future.done():
                        future.set_result(None)
                else:
                    waiting.append((seq, future))
            self._waiters = waiting

    # -- reading one's writes on any gateway ----------------------------------------------------

    async def caught_up(self, seq: int, within: float) -> bool:
        """Wait until every event up to `seq` has been handed to the local fan-out (and so to
        the access caches): the read barrier a request passes before it is answered, with `seq`
        the log's head when it arrived. A write another gateway acknowledged is then seen here,
        whichever gateway the client's next request reaches (a member removed on one cannot
        read on another a moment later).

        Usually the bus brings the events within a millisecond; what it has not brought within
        `gap_wait` is read from the log. False when `within` seconds passed first (the database is
        unwell): the request goes on with what this gateway knows, as it did before the barrier."""
        if seq <= self.delivered or not self._started or self._stopping:
            return True
        self.stats.waited += 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append((seq, future))
        behind = loop.call_later(self.gap_wait, self._still_behind, seq)
        try:
            await asyncio.wait_for(future, within)
            return True
        except TimeoutError:
            self.stats.waits_timed_out += 1
            log.warning("this gateway is behind the log (seq %d of %d) after %.1f s", self.delivered, seq, within)
            return False
        finally:
            behind.cancel()
            if future.cancelled() or not future.done():  # wait_for cancels it on a timeout
                self._waiters = [(s, f) for s, f in self._waiters if f is not future]

    async def synced(self, within: float) -> bool:
        """Wait until every other live gateway has answered a sync sent now over the control
        subject. The bus keeps each sender's order, so its answer comes after every control
        message it sent before it (presence it shared, `presence/service.py`): what any gateway's
        streams were told before this call is known here once it returns. For state that is
        not in the log; the log's own barrier is `caught_up`. False after `within` seconds
        without every answer (a gateway just died, or the bus is down). A gateway that let a sync
        time out is not waited for again until it is heard from anew, so a dead one still listed
        as alive costs one caller `within`, not every caller until it is dropped."""
        peers = {
            g["id"]
            for g in self.gateways()
            if g["alive"] and g["id"] != self.gateway_id and self._unanswered.get(g["id"]) != self._heard.get(g["id"])
        }
        if not peers or not self.stats.connected:
            return not peers
        token = secrets.token_hex(8)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs[token] = (peers, future)
        self.control("gateway.sync", {"id": self.gateway_id, "token": token})
        try:
            await asyncio.wait_for(future, within)
            return True
        except TimeoutError:
            for silent in peers:  # those still in the set did not answer
                self._unanswered[silent] = self._heard.get(silent, 0.0)
            return False
        finally:
            del self._syncs[token]

    def _synced(self, data: dict[str, Any]) -> None:
        if data.get("to") != self.gateway_id or (waiting := self._syncs.get(str(data.get("token")))) is None:
            return
        peers, future = waiting
        peers.discard(str(data.get("id")))
        if not peers and not future.done():
            future.set_result(None)

    def _still_behind(self, seq: int) -> None:
        if seq > self.delivered:
            self.fill()

    # -- catching up from the log -------------------------------------------------------------

    def fill(self) -> None:
        """Read the log after the last delivered seq (now, or again once a read under way ends)."""
        if self._filling is not None and not self._filling.done():
            self._fill_again = True
            return
        self._filling = asyncio.create_task(self._fill(), name="spacechat-relay-fill")

    async def _fill(self) -> None:
        while True:
            self._fill_again = False
            try:
                while True:
                    bodies = await self._read_after(self.delivered)
                    events = [decode_event(body) for body in bodies]
                    fresh = [event for event in events if event.seq is not None and event.seq > self.delivered]
                    if not fresh:
                        break
                    self.stats.filled += len(fresh)
                    for event in fresh:
                        assert event.seq is not None
                        self._pending.pop(event.seq, None)
                    self._hand_over(fresh)
            except Exception:
                log.exception("reading the log to fill a gap failed; trying again")
                await asyncio.sleep(self.poll_seconds)
                self._fill_again = True
            # What the bus brought meanwhile above the new position is delivered now.
            self._gap_since = None
            for seq in [seq for seq in self._pending if seq <= self.delivered]:
                del self._pending[seq]
                self.stats.duplicates += 1
            self._drain()
            if not self._fill_again:
                return

    async def _poll_loop(self) -> None:
        """The safety net for messages the bus lost without a visible gap (the newest ones, or
        all of them while it is down): what the log held a tick ago must have been delivered."""
        seen_head = 0
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                head = await self._log_head()
            except Exception:
                log.exception("reading the log's head failed")
                continue
            behind = seen_head if self.stats.connected else head
            if behind > self.delivered:
                self.fill()
            seen_head = head

    # -- which gateways are alive -------------------------------------------------------------

    def alive(self) -> dict[str, Any]:
        """What this gateway says of itself in its heartbeat."""
        return {
            **self._describe(),
            "id": self.gateway_id,
            "started_at": self.started_at,
            "delivered_seq": self.delivered,
            "bus_connected": self.stats.connected,
        }

    def gateways(self) -> list[dict[str, Any]]:
        """Every gateway heard from, this one as it is now; `alive` is false for one not heard
        from for three heartbeats (stopped, dead, or cut off from the bus)."""
        now, silent = time.monotonic(), 3 * self.heartbeat_seconds
        found = {self.gateway_id: {**self.alive(), "last_seen": now_rfc3339(), "alive": True}}
        for gateway_id, peer in self.peers.items():
            if gateway_id != self.gateway_id:
                found[gateway_id] = {**peer, "alive": now - self._heard.get(gateway_id, 0.0) < silent}
        return [found[key] for key in sorted(found)]

    async def _heartbeat_loop(self) -> None:
        """Each gateway says it is alive every `heartbeat_seconds`; health lists every gateway
        heard from, with when it was last heard (a partitioned one shows as silent)."""
        while True:
            self.announce()
            await asyncio.sleep(self.heartbeat_seconds)
