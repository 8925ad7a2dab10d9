"""The realtime gateway's routes: `GET /v1/realtime/sse` and `GET /v1/realtime/ws`.

Both authenticate, check `realtime:subscribe`, take the resume cursor (`Last-Event-ID`, which
browsers send on reconnect, or `?after=SEQ`) and hand over to the one subscription core in
realtime/stream.py, which holds the contract (replay, then live, no gap and no duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Match, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ..errors import BadRequest, SpacechatError, UpgradeRequired
from ..identity.permissions import Principal, check
from ..realtime.stream import NORMAL_CLOSURE, SERVICE_RESTART, EventStreamResponse, Sink, WSSink, answer, run_stream
from .common import error_response, operation, principal, query_int, spacechat
from .context import Context


async def resume_point(conn: HTTPConnection) -> int | None:
    """The seq to resume after: Last-Event-ID wins over ?after=; None to start live."""
    header = conn.headers.get("last-event-id", "").strip()
    if header:
        if not header.isdigit() or len(header) > 18:
            raise BadRequest("Last-Event-ID must be an event seq")
        after: int | None = int(header)
    else:
        after = query_int(conn, "after", None)
    if after is not None and after > await spacechat(conn).newest_seq(after):
        raise BadRequest("the cursor is newer than the newest event", code="cursor_in_future")
    return after


async def stream_to(app: Context, who: Principal, after: int | None, sink: Sink) -> None:
    visible = app.access.visibility(who)
    keys = (who.credential_id, who.user_id)
    session_id = who.credential_id
    if who.credential != "session" or session_id is None:
        await run_stream(app.db, app.streams, keys, visible, after, sink)
        return
    # A signed-in app's open stream: its person is here (a script's API token says nothing of it)
    # until the stream ends, which for a parked stream is after run_stream has returned.
    app.presence.connected(who.user_id, who.org_id, session_id)
    await run_stream(
        app.db,
        app.streams,
        keys,
        visible,
        after,
        sink,
        on_end=lambda: app.presence.disconnected(who.user_id, session_id),
    )


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
    after = await resume_point(request)
    return EventStreamResponse(lambda sink: stream_to(app, who, after, sink), stall=app.bus.stall_seconds)


async def ws(websocket: WebSocket) -> None:
    app = spacechat(websocket)
    try:
        who = await principal(websocket)
        check(who, "realtime:subscribe")
        after = await resume_point(websocket)
    except SpacechatError as exc:
        # Refuse before the handshake completes with an HTTP error body (ASGI websocket denial).
        await websocket.send_denial_response(error_response(exc))
        return
    await websocket.accept()
    sink = WSSink(websocket, stall=app.bus.stall_seconds)
    stream = asyncio.ensure_future(stream_to(app, who, after, sink))

    reader = asyncio.ensure_future(_answer_until_closed(websocket, stream))
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
    if sink.parked or sink.stalled:  # the host's connection carries it on (realtime/parked.py), or it was dropped
        return
    if websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=SERVICE_RESTART if app.bus.closing else NORMAL_CLOSURE)


async def _answer_until_closed(websocket: WebSocket, stream: asyncio.Future[Any]) -> None:
    """Answer the client's pings until it leaves, then end its stream. `receive`, not
    `receive_text`, which raises KeyError on a binary message: that ended this reader, and with
    it the answers to pings. A binary message is ignored, as a parked stream ignores it
    (host/websocket_park.py)."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            reply = answer(text) if text is not None else None
            if reply is not None:
                await websocket.send_text(reply)
    stream.cancel()


async def ws_over_http(request: Request) -> Response:
    """`GET /v1/realtime/ws` without the WebSocket upgrade: the handshake's own answers (401 not
    signed in, 403 without realtime:subscribe, 400 a bad cursor), else 426 (issue 10: it was a
    404 the document did not mention)."""
    who = await principal(request)
    check(who, "realtime:subscribe")
    await resume_point(request)
    raise UpgradeRequired(
        "this is a WebSocket endpoint: connect with a WebSocket (or use /v1/realtime/sse)",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


class WebSocketEndpoint(WebSocketRoute):
    """A WebSocket route that also answers a plain HTTP GET on its path: the handshake's own
    refusals, else 426 (`over_http`; by default the realtime stream's, ws_over_http)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        over_http: Callable[[Request], Awaitable[Response]] = ws_over_http,
    ) -> None:
        super().__init__(path, endpoint)
        self.over_http = over_http

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return super().matches(scope)
        match, child = super().matches({**scope, "type": "websocket"})
        if match is Match.FULL and scope["method"] not in ("GET", "HEAD"):
            return Match.PARTIAL, child
        return match, child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().handle(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET"})
        response = await self.over_http(Request(scope, receive))
        await response(scope, receive, send)
