"""In-process fan-out of committed events to realtime subscribers.

Each event is encoded once, into an entry that holds its SSE frame and its JSON, and appended to
a ring of recent entries. Subscribers hold only a cursor into the ring: waking one is setting a
future, and delivering is writing bytes that are already made (PERFORMANCE.md: per-subscriber
work is what limits fan-out). Subscribers woken by the same publish share one view of what is
new: its entries cut into runs of the same organisation, channel and visibility class, each run's
frames joined once, so a subscriber's work is one check and one join per run, not per event.

A subscriber that is caught up and idle, and whose stream can take bytes synchronously (an SSE
response served by uvicorn: `Subscription.direct`), is written to from `publish` itself: no task
wake, no trip through the ASGI send chain. One that cannot take them now (its transport is
paused by back-pressure) is woken instead and goes the usual way, which waits for the socket.
A parked stream (realtime/parked.py: caught up, its connection handed over by the host) has no
task at all: waking it runs one turn of its live loop in place (`Subscription.on_wake`). What it
writes is framed for its transport (`Framing`: SSE, or WebSocket text frames), and that too is
made once per batch and shared by every subscriber of the same transport.

A subscriber more than `max_lag` entries behind the newest is cut: its stream ends with a `lagged`
notice and the client resumes from the log, which has everything. The same happens to one whose
cursor the ring has overwritten. A stream whose socket takes nothing for `stall_seconds` (a client
alive but not reading: its kernel keeps acknowledging with a zero window, so TCP never gives up)
is dropped without waiting to write anything more (`stalled_total`): it would otherwise hold its
place here, and its send buffer, for as long as the client process lives.

The bus never imports the API, the host or the plugin; it is handed `Event`s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from ..events import Event, now_rfc3339


@dataclass(slots=True)
class Entry:
    """One published event, encoded once."""

    pos: int
    seq: int | None
    event_type: str
    org_id: str | None
    channel_id: str | None
    thread_id: str | None
    json: bytes
    sse: bytes
    _text: str | None = None

    def text(self) -> str:
        """The envelope as str, for WebSocket text frames (decoded once, on first use)."""
        if self._text is None:
            self._text = self.json.decode()
        return self._text


def encode_entry(
    pos: int,
    seq: int | None,
    event_type: str,
    org_id: str | None,
    channel_id: str | None,
    thread_id: str | None,
    body: bytes,
) -> Entry:
    # A live-only event carries no `id:` so it does not move the browser's Last-Event-ID.
    frame = b"id: %d\ndata: %s\n\n" % (seq, body) if seq is not None else b"data: %s\n\n" % body
    return Entry(pos, seq, event_type, org_id, channel_id, thread_id, body, frame)


@dataclass(slots=True)
class Run:
    """Consecutive entries of one organisation, channel and visibility class: whoever may see
    one may see all, so they are checked once and sent as one joined chunk."""

    org_id: str | None
    channel_id: str | None
    event_type: str  # the visibility class of its events (see Bus.classify)
    entries: list[Entry]
    sse: bytes
    first_seq: int | None
    last_seq: int | None
    # Its events as WebSocket text frames, joined; made on first use (ws_run), so a server with
    # no parked WebSocket never makes them.
    ws: bytes | None = None


def make_runs(entries: list[Entry], classify: Callable[[str], str]) -> list[Run]:
    runs: list[Run] = []
    current: list[Entry] = []
    key: tuple[str | None, str | None, str] | None = None
    for entry in entries:
        entry_key = (entry.org_id, entry.channel_id, classify(entry.event_type))
        if entry_key != key and current:
            runs.append(_run(key, current))
            current = []
        key = entry_key
        current.append(entry)
    if current:
        runs.append(_run(key, current))
    return runs


# For runs that share visibility keys: the first run of each (organisation, channel, class),
# and for each run the index of its key among them (`shared_keys`).
Keys = tuple[list[Run], list[int]]


def shared_keys(runs: list[Run]) -> Keys | None:
    """What lets `Subscription.shown` ask a subscriber once per visibility key rather than once
    per run, or None when no two runs share one. A group commit of new threads alternates two
    classes (`message.created`, `thread.created`), so a batch of 25 posts is 50 runs but two
    keys, and the question is asked for every subscriber at every publish."""
    index: dict[tuple[str | None, str | None, str], int] = {}
    firsts: list[Run] = []
    key_of: list[int] = []
    for run in runs:
        key = (run.org_id, run.channel_id, run.event_type)
        found = index.get(key)
        if found is None:
            found = index[key] = len(firsts)
            firsts.append(run)
        key_of.append(found)
    return (firsts, key_of) if len(firsts) < len(runs) else None


def _run(key: Any, entries: list[Entry]) -> Run:
    seqs = [entry.seq for entry in entries if entry.seq is not None]
    return Run(
        key[0],
        key[1],
        key[2],
        entries,
        b"".join([entry.sse for entry in entries]),
        seqs[0] if seqs else None,
        seqs[-1] if seqs else None,
    )


def trim(run: Run, after_seq: int) -> Run | None:
    """The part of a run not already delivered by a replay that reached `after_seq`."""
    if run.first_seq is None or run.first_seq > after_seq:
        return run
    kept = [entry for entry in run.entries if entry.seq is None or entry.seq > after_seq]
    if not kept:
        return None
    return _run((run.org_id, run.channel_id, run.event_type), kept)


def control_frame(name: str, data: dict[str, Any], *, seq: int | None = None) -> bytes:
    """A named SSE control event (`reset`, `lagged`, `heartbeat`, `ready`)."""
    head = b"id: %d\n" % seq if seq is not None else b""
    return head + b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


def ws_frame(payload: bytes) -> bytes:
    """`payload` as one WebSocket text frame as a server sends it when no extension was
    negotiated (RFC 6455 5.2): FIN and opcode 1 (0x81), no mask bit, then the length in 7 bits,
    or 126 and 16 bits, or 127 and 64 bits, then the payload. tests/test_bus.py holds it to the
    websockets library's own serialisation."""
    length = len(payload)
    if length < 126:
        return b"\x81%c%s" % (length, payload)
    if length < 65536:
        return b"\x81\x7e%s%s" % (length.to_bytes(2, "big"), payload)
    return b"\x81\x7f%s%s" % (length.to_bytes(8, "big"), payload)


def ws_run(run: Run) -> bytes:
    """A run's events as WebSocket text frames, one per envelope, joined; made once per run and
    kept on it, so every subscriber given the same run writes the same bytes object."""
    if run.ws is None:
        run.ws = b"".join([ws_frame(entry.json) for entry in run.entries])
    return run.ws


def ws_control(name: str, data: dict[str, Any]) -> bytes:
    """A WebSocket control message (`{"type": "heartbeat", ...}`) as one text frame."""
    return ws_frame(orjson.dumps({"type": name, **data}))


def _sse_run(run: Run) -> bytes:
    return run.sse


def _sse_control(name: str, data: dict[str, Any]) -> bytes:
    return control_frame(name, data)


@dataclass(frozen=True, slots=True, eq=False)
class Framing:
    """How one transport frames what a stream is sent: SSE events or WebSocket text frames. A
    stream written to without a task of its own (`Subscription.direct`, realtime/parked.py)
    writes `Bus.body(shown, runs, framing)`: made once per batch for each framing and shared."""

    name: str  # "sse" or "ws": the `transport` label of /metrics' spacechat_realtime_parked
    run: Callable[[Run], bytes]  # a run's events, framed and joined
    control: Callable[[str, dict[str, Any]], bytes]  # a control event (`heartbeat`, `lagged`)


SSE = Framing("sse", _sse_run, _sse_control)
WS = Framing("ws", ws_run, ws_control)


class Lagged(Exception):
    """The subscriber fell too far behind and must resume from the log."""


# Subscribers served per loop turn by a spread publish: ~2 ms of writes at ~20 µs each.
SPREAD_SLICE = 100


class Subscription:
    __slots__ = (
        "_bus",
        "blocked",
        "closed",
        "direct",
        "framing",
        "lagged",
        "on_wake",
        "pos",
        "private",
        "quiet",
        "sent",
        "visible",
        "waiter",
    )

    def __init__(self, bus: Bus, visible: Callable[[Any], bool]) -> None:
        self._bus = bus
        self.pos = bus.head
        self.visible = visible
        self.waiter: asyncio.Future[None] | None = None
        self.lagged = False
        self.closed = False
        # The seq of the newest event its stream has sent (kept by its owner, and by `publish`
        # when it writes directly), so nothing a replay already sent is sent again.
        self.sent = 0
        # Writes bytes to the stream now, or answers False when it cannot (then the owner's
        # task is woken to send them). Set by the owner once the stream is live; `framing` says
        # what it takes (SSE unless a parked WebSocket says otherwise).
        self.direct: Callable[[bytes], bool] | None = None
        self.framing = SSE
        # Live-only events meant for this subscriber alone (Bus.deliver_to), waiting to be sent
        # after what the ring holds for it.
        self.private: list[Run] = []
        # A parked stream's (realtime/parked.py) turn of its live loop: called by `wake` in place
        # of resolving a waiter, since a parked stream has no task to wait.
        self.on_wake: Callable[[Any], None] | None = None
        # Its stream's socket is full (a parked stream found it so): publish leaves it alone,
        # neither building what is new for it nor waking it, until the host says the socket
        # drained (ParkedStream.drained). A slow reader then costs nothing per publish but the
        # lag check, instead of a walk over everything it has not taken yet.
        self.blocked = False
        # Nothing was written to its stream since the heartbeat tick before (`beat_due`).
        self.quiet = False

    @property
    def bus(self) -> Bus:
        return self._bus

    def shown(self, runs: list[Run], keys: Keys | None = None) -> list[Run]:
        """Of `runs`, what this subscriber may see and has not been sent: `runs` itself when it
        may see them all (no list made per subscriber). `keys` is `shared_keys(runs)`, when
        the caller has it."""
        visible, sent = self.visible, self.sent
        if len(runs) == 1:
            run = runs[0]
            if not visible(run):
                return []
            if run.first_seq is None or run.first_seq > sent:
                return runs
            kept = trim(run, sent)  # the seam after a replay
            return [] if kept is None else [kept]
        if keys is not None:  # the runs share visibility keys: each asked once (`shared_keys`)
            firsts, key_of = keys
            allowed = [visible(run) for run in firsts]
            if all(allowed):
                shown = runs
            elif not any(allowed):
                return []
            else:
                shown = [run for run, key in zip(runs, key_of, strict=True) if allowed[key]]
        else:
            shown = [run for run in runs if visible(run)]
        if shown and shown[0].first_seq is not None and shown[0].first_seq <= sent:  # the seam after a replay
            shown = [kept for run in shown if (kept := trim(run, sent)) is not None]
        return shown

    def beat_due(self) -> bool:
        """On a heartbeat tick that finds nothing new for it: whether its stream is owed a
        `heartbeat`. Ticks come every half `heartbeat_seconds`, and
        a stream is owed one when nothing was written to it since the tick before, the
        heartbeat counting as a write: an idle stream gets one every `heartbeat_seconds`, a
        busy one none (at 5,000 busy streams they were 5,000 writes per tick, each sharing the
        core with the fan-out of the messages that made them busy), and no live stream is
        silent for longer than `heartbeat_seconds`."""
        if self.quiet:
            self.quiet = False
            return True
        self.quiet = True
        return False

    def delivered(self, runs: list[Run]) -> None:
        """`runs` were written: the newest logged seq among them is now sent."""
        self.quiet = False
        last = runs[-1].last_seq
        if last is not None:  # the usual case, tried first: no iterator per subscriber
            self.sent = last
            return
        for run in reversed(runs):
            if run.last_seq is not None:
                self.sent = run.last_seq
                return

    async def next(self) -> list[Run]:
        """The runs after this subscriber's cursor that it may see; waits for some. Returns an
        empty list on a heartbeat tick or when closed. Raises Lagged when cut."""
        bus = self._bus
        while True:
            if self.lagged:
                raise Lagged()
            if self.closed:
                return []
            shown: list[Run] = []
            if self.pos < bus.head:
                runs = bus.runs_after(self.pos)
                if runs is None:
                    self.lagged = True
                    raise Lagged()
                self.pos = bus.head
                visible = self.visible
                shown = [run for run in runs if visible(run)]
            if self.private:
                shown.extend(self.private)
                self.private = []
            if shown:
                return shown
            # Nothing this subscriber may see: keep waiting, say nothing.
            waiter = asyncio.get_running_loop().create_future()
            self.waiter = waiter
            try:
                await waiter
            finally:
                self.waiter = None
            if waiter.result() is TICK and self.pos == bus.head:
                return []

    def wake(self, reason: Any = None) -> None:
        on_wake = self.on_wake
        if on_wake is not None:
            on_wake(reason)
            return
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reason)

    def close(self) -> None:
        self.closed = True
        self.wake()
        self._bus.unsubscribe(self)


TICK: Any = object()  # the heartbeat's wake reason


def _wake_on_tick(subscriptions: list[Subscription]) -> None:
    for subscription in subscriptions:
        subscription.wake(TICK)


class Bus:
    """Fan-out of committed (and live-only) events, in publish order."""

    def __init__(
        self,
        *,
        ring_size: int = 8192,
        max_lag: int = 2000,
        classify: Callable[[str], str] = lambda _: "",
        stall_seconds: float = 30.0,
    ) -> None:
        """`classify` maps an event type to its visibility class: events of one organisation,
        channel and class are visible to the same subscribers. `stall_seconds`: how long a
        stream's socket may stay full before its connection is dropped (realtime.stall_seconds)."""
        assert ring_size >= max_lag, "the ring must hold at least max_lag entries"
        self.classify = classify
        self._runs: dict[int, tuple[int, tuple[list[Run], Keys | None]]] = {}
        self._joined: dict[Framing, tuple[list[Run], bytes]] = {}  # Bus.body's last join, per framing
        self._beats: dict[Framing, bytes] = {}  # this tick's heartbeat, per framing
        self.ticks = 0  # heartbeat ticks so far (Bus.tick)
        self._ring: list[Entry | None] = [None] * ring_size
        self._size = ring_size
        self.max_lag = max_lag
        self.head = 0  # position of the newest entry; 0 when nothing was published
        self.last_seq = 0
        self._subscribers: set[Subscription] = set()
        self.published = 0
        self.lagged_total = 0
        self.stall_seconds = stall_seconds
        self.stalled_total = 0  # streams dropped because their socket took nothing for stall_seconds
        self.direct_writes = 0  # deliveries written from publish itself
        self.task_wakes = 0  # subscribers woken to deliver through their own task
        # Streams live with no task of their own (realtime/parked.py), by Framing.name.
        self.parked = {SSE.name: 0, WS.name: 0}
        self.closing = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, visible: Callable[[Any], bool]) -> Subscription:
        subscription = Subscription(self, visible)
        if self.closing:  # the server is stopping: a stream that starts now ends at once
            subscription.closed = True
            return subscription
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, events: Iterable[Event], *, spread: bool = False) -> None:
        """Append events (already committed, in seq order; or live only) and wake subscribers.

        `spread` serves the subscribers a slice per loop turn instead of all at once: for
        ambient events (presence, typing) that reach everyone, so that a message published
        meanwhile is not held behind a thousand writes of them (bench/fanout.py --typists). A
        publish in between serves everyone, the spread's events first, so order holds."""
        ring, size = self._ring, self._size
        count = 0
        for event in events:
            assert isinstance(event, Event), f"the bus publishes Events, not {type(event).__name__}"
            self.head += 1
            if event.seq is not None:
                assert event.seq > self.last_seq, "events must be published in seq order"
                self.last_seq = event.seq
            ring[self.head % size] = encode_entry(
                self.head,
                event.seq,
                event.event_type,
                event.org_id,
                event.channel_id,
                event.thread_id,
                event.to_json(),
            )
            count += 1
        if not count:
            return
        self.published += count
        if spread and len(self._subscribers) > SPREAD_SLICE:
            self._in_slices(self._serve, list(self._subscribers), 0)
        else:
            self._serve(self._subscribers)

    def _in_slices(
        self, each: Callable[[list[Subscription]], None], subscriptions: list[Subscription], start: int
    ) -> None:
        """`each` over SPREAD_SLICE subscribers now, the next slice on the loop's next turn."""
        end = start + SPREAD_SLICE
        each(subscriptions[start:end])
        if end < len(subscriptions):
            asyncio.get_running_loop().call_soon(self._in_slices, each, subscriptions, end)

    def _serve(self, subscriptions: Iterable[Subscription]) -> None:
        """The hot path of fan-out: once per subscriber per publish. An idle, caught-up stream
        with a `direct` write (a parked one) is written to here and now; any other is woken.
        Written out in one loop, with the runs after a position looked up once for the
        subscribers that share it (nearly all do), since each call and lookup saved is saved a
        thousand times a publish (bench/README.md, "Issue 16")."""
        head, max_lag = self.head, self.max_lag
        runs_at, view = -1, None
        for subscription in subscriptions:
            pos = subscription.pos
            if pos >= head:  # served already (by a publish after a spread one)
                continue
            if head - pos > max_lag and not subscription.lagged:
                subscription.lagged = True
                self.lagged_total += 1
                subscription.wake()
                continue
            if subscription.blocked or (subscription.waiter is None and subscription.on_wake is None):
                continue
            direct = subscription.direct
            if direct is not None and not subscription.closed:
                if pos != runs_at:
                    runs_at, view = pos, self._view(pos)
                if view is not None:  # else the ring no longer holds its cursor: wake it
                    runs = view[0]
                    shown = subscription.shown(runs, view[1])
                    if not shown:
                        subscription.pos = head
                        continue
                    if direct(self.body(shown, runs, subscription.framing)):
                        self.direct_writes += 1
                        subscription.delivered(shown)
                        subscription.pos = head
                        continue
            self.task_wakes += 1
            subscription.wake()

    def deliver_to(self, subscriptions: Iterable[Subscription], event: Event) -> int:
        """Send a live-only event to these subscribers only (one person's streams), each still
        asked `visible` like any event; returns how many took it. Encoded once; an idle,
        caught-up stream is written to at once, any other gets it after what the ring holds."""
        assert isinstance(event, Event) and event.live_only, "only live-only events are delivered privately"
        body = event.to_json()
        entry = encode_entry(0, None, event.event_type, event.org_id, event.channel_id, event.thread_id, body)
        run = _run((entry.org_id, entry.channel_id, self.classify(entry.event_type)), [entry])
        count = 0
        for subscription in subscriptions:
            if subscription.closed or subscription.lagged or not subscription.visible(run):
                continue
            count += 1
            direct = subscription.direct
            if (
                subscription.waiter is not None
                and direct is not None
                and subscription.pos == self.head
                and not subscription.private
                and direct(subscription.framing.run(run))
            ):
                self.direct_writes += 1
                subscription.quiet = False  # written to: no heartbeat due (beat_due)
                continue
            subscription.private.append(run)
            subscription.wake()
        return count

    def body(self, shown: list[Run], runs: list[Run], framing: Framing = SSE) -> bytes:
        """The bytes to write for `shown`, what a subscriber may see of `runs`, framed for its
        transport. When that is all of them (the usual case) the join is made once per framing
        and shared, so every subscriber of a transport writes the same bytes object (which the
        host frames once as an HTTP chunk for SSE: host/fastpath.py; WebSocket frames are whole)."""
        frame = framing.run
        if len(shown) == 1:
            return frame(shown[0])
        if shown is runs or (
            len(shown) == len(runs) and all(mine is theirs for mine, theirs in zip(shown, runs, strict=True))
        ):
            last = self._joined.get(framing)
            if last is not None and last[0] is runs:
                return last[1]
            joined = b"".join([frame(run) for run in runs])
            self._joined[framing] = (runs, joined)
            return joined
        return b"".join([frame(run) for run in shown])

    def entries_after(self, pos: int) -> list[Entry] | None:
        """Entries after `pos` up to the head; None when the ring no longer holds them."""
        if self.head - pos > self._size:
            return None
        ring, size = self._ring, self._size
        out = []
        for p in range(pos + 1, self.head + 1):
            entry = ring[p % size]
            assert entry is not None and entry.pos == p
            out.append(entry)
        return out

    def runs_after(self, pos: int) -> list[Run] | None:
        """`entries_after(pos)` cut into runs, made once for all the subscribers at `pos`; None
        when the ring no longer holds them."""
        view = self._view(pos)
        return None if view is None else view[0]

    def _view(self, pos: int) -> tuple[list[Run], Keys | None] | None:
        """`runs_after(pos)` and their `shared_keys`, made once for all the subscribers at `pos`."""
        cached = self._runs.get(pos)
        if cached is not None and cached[0] == self.head:
            return cached[1]
        entries = self.entries_after(pos)
        if entries is None:
            return None
        runs = make_runs(entries, self.classify)
        view = (runs, shared_keys(runs))
        if len(self._runs) > 64:  # subscribers wake at a handful of positions; forget old ones
            self._runs = {p: v for p, v in self._runs.items() if v[0] == self.head}
        self._runs[pos] = (self.head, view)
        return view

    def tick(self) -> None:
        """Heartbeat tick (every half `heartbeat_seconds`): wake every subscriber, so that one
        idle since the tick before is sent a `heartbeat` (`Subscription.beat_due`), a parked
        WebSocket its keepalive ping every other tick (`keepalive_tick`), and one whose socket
        stays full is found stalled.

        A slice of subscribers per loop turn, as a spread publish is: every stream woken in one
        turn held a message posted meanwhile behind thousands of writes, once per heartbeat
        (fan-out to 5,000: the p99 was the one message that met a tick, bench/README.md). A
        publish in between serves everyone, so a heartbeat never delays an event by more than
        a slice. The heartbeat's frame is made once per tick for each framing (`heartbeat`)."""
        self._beats = {}
        self.ticks += 1
        self._in_slices(_wake_on_tick, list(self._subscribers), 0)

    @property
    def keepalive_tick(self) -> bool:
        """Every other tick, once per `heartbeat_seconds`: the tick on which a parked WebSocket,
        busy or idle, is sent its keepalive ping (hookspecs.WEBSOCKET_PARK's `beat`)."""
        return self.ticks % 2 == 0

    def heartbeat(self, framing: Framing) -> bytes:
        """This tick's `heartbeat` control event as `framing` frames it, made once for all."""
        frame = self._beats.get(framing)
        if frame is None:
            frame = self._beats[framing] = framing.control("heartbeat", {"ts": now_rfc3339()})
        return frame

    def close_all(self) -> None:
        """End every stream, and any that starts from now on (the server is stopping)."""
        self.closing = True
        for subscription in list(self._subscribers):
            subscription.close()
