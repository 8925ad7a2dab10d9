"""The one subscription core behind SSE and WebSocket, and its sinks.

A client resumes after a seq. The core replays the log after that seq in pages, subscribes to
the bus, replays once more what committed meanwhile, then goes live skipping anything it already
sent: no gap and no duplicate at the seam. Without a cursor the stream starts at the newest
event. A cursor older than the log's retention gets `reset` (refetch, then continue from the seq
it carries). A subscriber that falls `realtime.max_lag` events behind gets `lagged` and the stream
ends; it resumes from its last id.

SSE frames: logged events are `id: <seq>` + `data: <envelope>`; live-only stream deltas carry no
id; control events are named (`ready`, `heartbeat`, `reset`, `lagged`). WebSocket messages are the
envelopes themselves, one text message each, and `{"type": <control>, ...}` for control; a
client's `ping` (or `{"type":"ping"}`) is answered `{"type":"pong"}`, and the stream closes with
1000 when it ends, 1012 (service restart, as uvicorn says) when the server stops.

Once caught up, either kind is parked where the serving host offers it (realtime/parked.py):
SSE through hookspecs.DIRECT_WRITE's `park`, WebSocket through hookspecs.WEBSOCKET_PARK.

A stream whose client takes nothing for `realtime.stall_seconds` is dropped (`Stalled`): a write
its task waits on that long ends it, and the connection is reset where the host offers `abort`
(parked ones: realtime/parked.py). Its place on the bus is given up either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ..errors import SpacechatError
from ..events import now_rfc3339
from ..hookspecs import DIRECT_WRITE, WEBSOCKET_PARK
from ..store import log as event_log
from ..store.db import Database
from .bus import SSE, WS, Entry, Framing, Lagged, Run, Subscription, control_frame, encode_entry, ws_frame
from .parked import ParkedStream
from .streams import Streams

Visible = Callable[[Any], bool]

# What a parked stream writes to: (write, end, beat, abort), as ParkedStream.start takes them.
Connection = tuple[Callable[[bytes], bool], Callable[[], None], Callable[[], None], Callable[[], None] | None]
# A sink's hand-over of its connection to a parked stream; None: not now, keep the task.
Park = Callable[[ParkedStream], Connection | None]
# The hand-over an HTTP host offers (hookspecs.DIRECT_WRITE `park`): (write, end[, abort]) or None.
OfferedPark = Callable[[Callable[[], None], Callable[[], None]], tuple[Callable[..., Any], ...] | None]


class Stalled(Exception):
    """The client took nothing for realtime.stall_seconds: its stream is dropped."""


async def _within(stall: float, write: Awaitable[None], abort: Callable[[], None] | None) -> None:
    """`write`, given up after `stall` seconds (the client is not reading): the connection is
    then dropped with the host's `abort` where it offers one, and Stalled raised."""
    try:
        async with asyncio.timeout(stall):
            await write
    except TimeoutError:
        if abort is not None:
            abort()
        raise Stalled() from None


class Sink(Protocol):
    framing: Framing  # what its connection takes once parked
    stalled: bool  # dropped for taking nothing (run_stream sets it): nothing more can be written

    async def events(self, items: Sequence[Entry]) -> None: ...
    async def runs(self, runs: Sequence[Run]) -> None: ...
    async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None: ...
    def direct(self) -> Callable[[bytes], bool] | None: ...
    def park(self) -> Park | None: ...


async def run_stream(
    db: Database,
    streams: Streams,
    keys: Sequence[str | None],
    visible: Visible,
    after: int | None,
    sink: Sink,
    on_end: Callable[[], None] = lambda: None,
) -> None:
    """Replay after `after`, then live, to `sink`, for a subscriber that may see what `visible`
    allows; registered under `keys` (its credential and user) so ending access ends it. `on_end`
    runs once the stream has ended, which for a parked stream is after this returns."""
    parked = False
    try:
        subscription = await _catch_up(db, streams, keys, visible, after, sink)
        try:
            subscription.direct = sink.direct()
            parked = _park(subscription, sink, lambda: _end(streams, keys, subscription, on_end))
            if not parked:
                await _live(subscription, sink)
        finally:
            if not parked:
                streams.unsubscribe(keys, subscription)
    except Stalled:
        sink.stalled = True
        streams.bus.stalled_total += 1
    finally:
        if not parked:
            on_end()


def _end(streams: Streams, keys: Sequence[str | None], subscription: Subscription, on_end: Callable[[], None]) -> None:
    streams.unsubscribe(keys, subscription)
    on_end()


def _park(subscription: Subscription, sink: Sink, on_end: Callable[[], None]) -> bool:
    """Hand a caught-up stream to the host's connection (realtime/parked.py) when the host offers
    it: from then on the stream costs no task and no call chain. False: keep the task."""
    park = sink.park()
    if park is None or subscription.closed:
        return False
    stream = ParkedStream(subscription, on_end, sink.framing)
    connection = park(stream)
    if connection is None:
        return False
    stream.start(*connection)
    return True


async def _catch_up(
    db: Database, streams: Streams, keys: Sequence[str | None], visible: Visible, after: int | None, sink: Sink
) -> Subscription:
    """The seam: replay the log, subscribe, replay what committed meanwhile, then `ready`. The
    subscription's `sent` is the last seq sent, so live delivery skips anything replayed."""

    bus = streams.bus
    if after is not None and after < await event_log.pruned_through(db):
        await sink.control("reset", {"reason": "retention", "resume_after": bus.last_seq}, seq=bus.last_seq)
        after = None
    if after is None:
        subscription = streams.subscribe(keys, visible)
        sent = bus.last_seq
    else:
        # Catch up from the log without holding a place in the ring, then once more for what
        # committed between the last page and subscribing.
        sent = await _replay(db, visible, after, sink)
        subscription = streams.subscribe(keys, visible)
    try:
        if after is not None:
            sent = await _replay(db, visible, sent, sink)
        await sink.control("ready", {"resume_after": sent})
    except BaseException:  # the client left (or stalled) before `ready`: give up its place
        streams.unsubscribe(keys, subscription)
        raise
    subscription.sent = sent
    return subscription


async def _replay(db: Database, visible: Visible, after: int, sink: Sink) -> int:
    """Send the log after `after` to its end, page by page; return the last seq read.

    Resuming after 100,000 missed events must take under a second (#16), so the per-event work is
    kept to building the frame: the next page is read (on a reader thread) while this one is
    written, and visibility is asked once per organisation, channel and event type of a page
    rather than per event."""
    page_size = event_log.PAGE
    pending = asyncio.ensure_future(event_log.read_after(db, after, page_size))
    try:
        while True:
            page = await pending
            more = len(page) == page_size
            if more:
                pending = asyncio.ensure_future(event_log.read_after(db, page[-1].seq, page_size))
            allowed: dict[tuple[str | None, str | None, str], bool] = {}
            shown = []
            for event in page:
                key = (event.org_id, event.channel_id, event.event_type)
                ok = allowed.get(key)
                if ok is None:
                    ok = allowed[key] = visible(event)
                if ok:
                    shown.append(
                        encode_entry(
                            0, event.seq, event.event_type, event.org_id, event.channel_id, event.thread_id, event.body
                        )
                    )
            await sink.events(shown)
            if page:
                after = page[-1].seq
            if not more:
                return after
    finally:
        if not pending.done():
            pending.cancel()
        elif not pending.cancelled():
            pending.exception()  # a read that failed while the stream was ending: nothing to report


async def _live(subscription: Subscription, sink: Sink) -> None:
    """Deliver from the bus until the stream is closed or falls too far behind (`lagged`)."""
    while True:
        try:
            runs = await subscription.next()
        except Lagged:
            await sink.control("lagged", {"resume_after": subscription.sent})
            return
        if subscription.closed:
            return
        if not runs:  # a heartbeat tick
            if subscription.beat_due():
                await sink.control("heartbeat", {"ts": now_rfc3339()})
            continue
        runs = subscription.shown(runs)
        if runs:
            await sink.runs(runs)
            subscription.delivered(runs)


# --- SSE -----------------------------------------------------------------------------------


def _nothing() -> None:
    pass


class SSESink:
    __slots__ = ("_abort", "_first", "_open_direct", "_park", "parked", "send", "stall", "stalled")
    framing = SSE

    def __init__(
        self,
        send: Send,
        open_direct: Callable[[], Callable[[bytes], bool] | None] | None = None,
        park: OfferedPark | None = None,
        *,
        stall: float = 30.0,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self.send = send
        self._open_direct = open_direct
        self._park = park
        self.stall = stall  # realtime.stall_seconds
        self._abort = abort  # the host's reset of the connection (hookspecs.DIRECT_WRITE), if offered
        self.parked = False  # the host's connection carries the stream on (nothing to send at the end)
        self.stalled = False
        # Browsers reconnect after `retry` ms, sending Last-Event-ID; it rides on the first frame
        # so no client sees an event without data.
        self._first = b"retry: 1000\n"

    async def _write(self, body: bytes) -> None:
        if self._first:
            body, self._first = self._first + body, b""
        message = {"type": "http.response.body", "body": body, "more_body": True}
        await _within(self.stall, self.send(message), self._abort)

    async def events(self, items: Sequence[Entry]) -> None:
        if items:
            await self._write(b"".join([item.sse for item in items]))

    async def runs(self, runs: Sequence[Run]) -> None:
        await self._write(runs[0].sse if len(runs) == 1 else b"".join([run.sse for run in runs]))

    async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None:
        await self._write(control_frame(name, data, seq=seq))

    def direct(self) -> Callable[[bytes], bool] | None:
        """The serving host's direct body writer (hookspecs.DIRECT_WRITE), once the first frame
        went the usual way; None where the host offers none."""
        if self._first or self._open_direct is None:
            return None
        return self._open_direct()

    def park(self) -> Park | None:
        """The serving host's hand-over of the connection (hookspecs.DIRECT_WRITE `park`), once
        the first frame went the usual way; None where the host offers none."""
        if self._first or self._park is None:
            return None
        offered = self._park

        def park(stream: ParkedStream) -> Connection | None:
            connection = offered(stream.drained, stream.connection_lost)
            if connection is None:
                return None
            self.parked = True
            write, end, *rest = connection
            abort = rest[0] if rest else None
            if len(rest) < 2:
                return write, end, _nothing, abort
            beat, stall = rest[1], self.stall
            return write, end, lambda: beat(stall), abort  # a client gone without a word is dropped

        return park


class EventStreamResponse(Response):
    """A text/event-stream that writes pre-encoded frames and ends when the client leaves."""

    def __init__(self, start: Callable[[Sink], Any], *, stall: float = 30.0) -> None:
        # No Content-Length: the body never ends by itself.
        self.start = start
        self.stall = stall  # realtime.stall_seconds
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        offered = (scope.get("extensions") or {}).get(DIRECT_WRITE) or {}
        sink = SSESink(send, offered.get("open"), offered.get("park"), stall=self.stall, abort=offered.get("abort"))
        stream = asyncio.ensure_future(self.start(sink))

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            stream.cancel()

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            await stream
        except asyncio.CancelledError:
            if not stream.cancelled():
                raise
        except SpacechatError as exc:
            await send({"type": "http.response.body", "body": control_frame("error", exc.body()), "more_body": True})
        finally:
            watcher.cancel()
        if sink.parked or sink.stalled:  # lives on without this request (realtime/parked.py), or dropped
            return
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


# --- WebSocket -----------------------------------------------------------------------------

PINGS = frozenset({"ping", '{"type":"ping"}'})
PONG = '{"type":"pong"}'
_PONG_FRAME = ws_frame(PONG.encode())
NORMAL_CLOSURE = 1000
SERVICE_RESTART = 1012  # what uvicorn closes open WebSockets with when it stops


def answer(text: str) -> str | None:
    """What a WebSocket client's text message gets back: a ping (`ping` or `{"type":"ping"}`)
    gets `{"type":"pong"}`; anything else, nothing."""
    return PONG if text in PINGS else None


def _answer_frame(text: str) -> bytes | None:
    """`answer`, as the frame a parked WebSocket's host writes back (hookspecs.WEBSOCKET_PARK)."""
    return _PONG_FRAME if text in PINGS else None


class WSSink:
    __slots__ = ("_abort", "_park", "parked", "stall", "stalled", "ws")
    framing = WS

    def __init__(self, ws: WebSocket, *, stall: float = 30.0) -> None:
        self.ws = ws
        offered = (ws.scope.get("extensions") or {}).get(WEBSOCKET_PARK) or {}
        self._park: Callable[..., Any] | None = offered.get("park")
        self._abort: Callable[[], None] | None = offered.get("abort")
        self.stall = stall  # realtime.stall_seconds
        self.parked = False  # the host's connection carries the stream on (the route just returns)
        self.stalled = False

    async def _send(self, text: str) -> None:
        await _within(self.stall, self.ws.send_text(text), self._abort)

    async def events(self, items: Sequence[Entry]) -> None:
        for item in items:
            await self._send(item.text())

    async def runs(self, runs: Sequence[Run]) -> None:
        for run in runs:
            await self.events(run.entries)

    async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None:
        await self._send(orjson.dumps({"type": name, **data}).decode())

    def direct(self) -> Callable[[bytes], bool] | None:
        return None

    def park(self) -> Park | None:
        """The serving host's hand-over of the WebSocket (hookspecs.WEBSOCKET_PARK); None where
        the host offers none. Where it cannot now (another WebSocket implementation, an extension
        such as per-message-deflate negotiated, back-pressure) the offered park answers None."""
        offered = self._park
        if offered is None:
            return None

        def park(stream: ParkedStream) -> Connection | None:
            connection = offered(stream.drained, stream.connection_lost, _answer_frame)
            if connection is None:
                return None
            self.parked = True
            write, end, beat, *abort = connection
            bus = stream.subscription.bus

            def close() -> None:
                end(SERVICE_RESTART if bus.closing else NORMAL_CLOSURE)

            return write, close, beat, abort[0] if abort else None

        return park
