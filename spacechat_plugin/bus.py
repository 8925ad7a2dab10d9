"""In-process fan-out of committed events to realtime subscribers.

Each event is encoded once, into an entry that holds its SSE frame and its JSON, and appended to
a ring of recent entries. Subscribers hold only a cursor into the ring: waking one is setting a
future, and delivering is joining bytes that are already made (PERFORMANCE.md: per-subscriber
work is what limits fan-out). A subscriber more than `max_lag` entries behind the newest is cut:
its stream ends with a `lagged` notice and the client resumes from the log, which has everything.
The same happens to one whose cursor the ring has overwritten.

The bus never imports the API, the host or the plugin; it is handed `Event`s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .events import Event


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


def control_frame(name: str, data: dict[str, Any], *, seq: int | None = None) -> bytes:
    """A named SSE control event (`reset`, `lagged`, `heartbeat`, `ready`)."""
    head = b"id: %d\n" % seq if seq is not None else b""
    return head + b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


class Lagged(Exception):
    """The subscriber fell too far behind and must resume from the log."""


class Subscription:
    __slots__ = ("_bus", "closed", "lagged", "pos", "visible", "waiter")

    def __init__(self, bus: Bus, visible: Callable[[Entry], bool]) -> None:
        self._bus = bus
        self.pos = bus.head
        self.visible = visible
        self.waiter: asyncio.Future[None] | None = None
        self.lagged = False
        self.closed = False

    async def next(self) -> list[Entry]:
        """The visible entries after this subscriber's cursor; waits for some. Returns an empty
        list on a heartbeat tick or when closed. Raises Lagged when cut."""
        bus = self._bus
        while True:
            if self.lagged:
                raise Lagged()
            if self.closed:
                return []
            if self.pos < bus.head:
                entries = bus.entries_after(self.pos)
                if entries is None:
                    self.lagged = True
                    raise Lagged()
                self.pos = bus.head
                visible = self.visible
                shown = [entry for entry in entries if visible(entry)]
                if shown:
                    return shown
                continue  # nothing this subscriber may see: keep waiting, say nothing
            waiter = asyncio.get_running_loop().create_future()
            self.waiter = waiter
            try:
                await waiter
            finally:
                self.waiter = None
            if waiter.result() is _TICK and self.pos == bus.head:
                return []

    def wake(self, reason: Any = None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reason)

    def close(self) -> None:
        self.closed = True
        self.wake()
        self._bus.unsubscribe(self)


_TICK: Any = object()


class Bus:
    """Fan-out of committed (and live-only) events, in publish order."""

    def __init__(self, *, ring_size: int = 8192, max_lag: int = 2000) -> None:
        assert ring_size >= max_lag, "the ring must hold at least max_lag entries"
        self._ring: list[Entry | None] = [None] * ring_size
        self._size = ring_size
        self.max_lag = max_lag
        self.head = 0  # position of the newest entry; 0 when nothing was published
        self.last_seq = 0
        self._subscribers: set[Subscription] = set()
        self.published = 0
        self.lagged_total = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self, visible: Callable[[Entry], bool]) -> Subscription:
        subscription = Subscription(self, visible)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def publish(self, events: Iterable[Event]) -> None:
        """Append events (already committed, in seq order; or live only) and wake subscribers."""
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
        head, max_lag = self.head, self.max_lag
        for subscription in self._subscribers:
            if head - subscription.pos > max_lag and not subscription.lagged:
                subscription.lagged = True
                self.lagged_total += 1
                subscription.wake()
            elif subscription.waiter is not None:
                subscription.wake()

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

    def tick(self) -> None:
        """Heartbeat: wake every idle subscriber so it can prove the connection is alive."""
        for subscription in list(self._subscribers):
            subscription.wake(_TICK)

    def close_all(self) -> None:
        for subscription in list(self._subscribers):
            subscription.close()
