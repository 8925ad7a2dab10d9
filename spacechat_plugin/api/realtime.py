"""The realtime gateway: `GET /v1/realtime/sse` and `GET /v1/realtime/ws`, one core.

A client resumes with `Last-Event-ID` (SSE; browsers send it on reconnect) or `?after=SEQ`.
The core replays the log after that seq in pages, subscribes to the bus, replays once more what
committed meanwhile, then goes live skipping anything it already sent: no gap and no duplicate at
the seam. Without a cursor the stream starts at the newest event. A cursor older than the log's
retention gets `reset` (refetch, then continue from the seq it carries). A subscriber that falls
`realtime.max_lag` events behind gets `lagged` and the stream ends; it resumes from its last id.

SSE frames: logged events are `id: <seq>` + `data: <envelope>`; live-only stream deltas carry no
id; control events are named (`ready`, `heartbeat`, `reset`, `lagged`). WebSocket messages are the
envelopes themselves, and `{"type": <control>, ...}` for control.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..errors import BadRequest, SpacechatError
from ..events import now_rfc3339
from ..identity.permissions import Principal, check
from ..realtime.bus import Entry, Lagged, Run, control_frame, encode_entry
from ..store import log as event_log
from .common import error_response, operation, principal, query_int, spacechat

if TYPE_CHECKING:
    from ..app import Spacechat


class Sink(Protocol):
    async def events(self, items: Sequence[Entry]) -> None: ...
    async def runs(self, runs: Sequence[Run]) -> None: ...
    async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None: ...
    def direct(self) -> Callable[[bytes], bool] | None: ...


def resume_point(conn: HTTPConnection) -> int | None:
    """The seq to resume after: Last-Event-ID wins over ?after=; None to start live."""
    header = conn.headers.get("last-event-id", "").strip()
    if header:
        if not header.isdigit() or len(header) > 18:
            raise BadRequest("Last-Event-ID must be an event seq")
        after: int | None = int(header)
    else:
        after = query_int(conn, "after", None)
    if after is not None and after > spacechat(conn).db.last_seq:
        raise BadRequest("the cursor is newer than the newest event", code="cursor_in_future")
    return after


async def run_stream(app: Spacechat, who: Principal, after: int | None, sink: Sink) -> None:
    """The one subscription core behind SSE and WebSocket."""

    visible = app.access.visibility(who)

    async def replay(after: int) -> tuple[int, bool]:
        """Send one page of the log after `after`; return the last seq read and whether more remain."""
        page = await event_log.read_after(db, after)
        entries = [encode_entry(0, e.seq, e.event_type, e.org_id, e.channel_id, e.thread_id, e.body) for e in page]
        await sink.events([entry for entry in entries if visible(entry)])
        return (page[-1].seq if page else after), len(page) == event_log.PAGE

    db, bus = app.db, app.bus
    if after is not None and after < await event_log.pruned_through(db):
        await sink.control("reset", {"reason": "retention", "resume_after": bus.last_seq}, seq=bus.last_seq)
        after = None
    if after is None:
        subscription = app.subscribe(who, visible)
        sent = bus.last_seq
        await sink.control("ready", {"resume_after": sent})
    else:
        sent, more = after, True
        while more:  # catch up from the log without holding a place in the ring
            sent, more = await replay(sent)
        subscription = app.subscribe(who, visible)
        more = True
        while more:  # what committed between the last page and subscribing
            sent, more = await replay(sent)
        await sink.control("ready", {"resume_after": sent})
    subscription.sent = sent
    subscription.direct = sink.direct()
    try:
        while True:
            try:
                runs = await subscription.next()
            except Lagged:
                await sink.control("lagged", {"resume_after": subscription.sent})
                return
            if subscription.closed:
                return
            if not runs:
                await sink.control("heartbeat", {"ts": now_rfc3339()})
                continue
            runs = subscription.shown(runs)
            if runs:
                await sink.runs(runs)
                subscription.delivered(runs)
    finally:
        app.unsubscribe(who, subscription)


# --- SSE -----------------------------------------------------------------------------------


# `spacechat serve` puts uvicorn's own `send` in the scope under this key (see
# `expose_server_send`), so an event stream can write its frames without a trip through every
# middleware's `send` wrapper. Served by another host, the key is absent and nothing changes.
SERVER_SEND = "spacechat.server_send"


def expose_server_send(app: ASGIApp) -> ASGIApp:
    async def with_server_send(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[SERVER_SEND] = send
        await app(scope, receive, send)

    return with_server_send


def chunk_writer(server_send: Any) -> Callable[[bytes], bool] | None:
    """A synchronous writer of HTTP/1.1 chunks for a response already started on uvicorn's
    httptools protocol, or None where that is not what serves it. It writes only while the
    transport takes data (not paused by back-pressure) and the response is open; otherwise it
    answers False and the caller sends the usual way, which waits for the socket."""
    cycle = getattr(server_send, "__self__", None)
    if cycle is None or type(cycle).__module__ != "uvicorn.protocols.http.httptools_impl":
        return None
    if not getattr(cycle, "chunked_encoding", False) or not getattr(cycle, "response_started", False):
        return None
    transport, flow = cycle.transport, cycle.flow

    def write(body: bytes) -> bool:
        if cycle.disconnected or cycle.response_complete or flow.write_paused:
            return False
        transport.write(b"%x\r\n%s\r\n" % (len(body), body))
        return True

    return write


class SSESink:
    __slots__ = ("_first", "_server_send", "send")

    def __init__(self, send: Send, server_send: Any = None) -> None:
        self.send = send
        self._server_send = server_send
        # Browsers reconnect after `retry` ms, sending Last-Event-ID; it rides on the first frame
        # so no client sees an event without data.
        self._first = b"retry: 1000\n"

    async def _write(self, body: bytes) -> None:
        if self._first:
            body, self._first = self._first + body, b""
        await self.send({"type": "http.response.body", "body": body, "more_body": True})

    async def events(self, items: Sequence[Entry]) -> None:
        if items:
            await self._write(b"".join([item.sse for item in items]))

    async def runs(self, runs: Sequence[Run]) -> None:
        await self._write(runs[0].sse if len(runs) == 1 else b"".join([run.sse for run in runs]))

    async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None:
        await self._write(control_frame(name, data, seq=seq))

    def direct(self) -> Callable[[bytes], bool] | None:
        return None if self._first else chunk_writer(self._server_send)


class EventStreamResponse(Response):
    """A text/event-stream that writes pre-encoded frames and ends when the client leaves."""

    def __init__(self, app: Spacechat, who: Principal, after: int | None) -> None:
        # No Content-Length: the body never ends by itself.
        self.app, self.who, self.after = app, who, after
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        sink = SSESink(send, scope.get(SERVER_SEND))
        stream = asyncio.ensure_future(run_stream(self.app, self.who, self.after, sink))

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
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


@operation(
    "Subscribe to events as Server-Sent Events (resume with Last-Event-ID or ?after=)",
    tags=["realtime"],
    scope="realtime:subscribe",
    produces="text/event-stream",
    query={"after": "resume after this seq (the Last-Event-ID header wins)"},
)
async def sse(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    check(who, "realtime:subscribe")
    return EventStreamResponse(app, who, resume_point(request))


# --- WebSocket -----------------------------------------------------------------------------


class WSSink:
    __slots__ = ("ws",)

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def events(self, items: Sequence[Entry]) -> None:
        for item in items:
            await self.ws.send_text(item.text())

    async def runs(self, runs: Sequence[Run]) -> None:
        for run in runs:
            await self.events(run.entries)

    async def control(self, name: str, data: dict[str, Any], seq: int | None = None) -> None:
        await self.ws.send_text(orjson.dumps({"type": name, **data}).decode())

    def direct(self) -> Callable[[bytes], bool] | None:
        return None


async def ws(websocket: WebSocket) -> None:
    app = spacechat(websocket)
    try:
        who = await principal(websocket)
        check(who, "realtime:subscribe")
        after = resume_point(websocket)
    except SpacechatError as exc:
        # Refuse before the handshake completes with an HTTP error body (ASGI websocket denial).
        await websocket.send_denial_response(error_response(exc))
        return
    await websocket.accept()
    stream = asyncio.ensure_future(run_stream(app, who, after, WSSink(websocket)))

    async def read_until_closed() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await websocket.receive_text()
                if message == '{"type":"ping"}' or message == "ping":
                    await websocket.send_text('{"type":"pong"}')
        stream.cancel()

    reader = asyncio.ensure_future(read_until_closed())
    try:
        await stream
    except asyncio.CancelledError:
        if not stream.cancelled():
            raise
    except SpacechatError as exc:
        with contextlib.suppress(Exception):
            await websocket.send_text(orjson.dumps({"type": "error", **exc.body()}).decode())
    finally:
        reader.cancel()
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=1000)
