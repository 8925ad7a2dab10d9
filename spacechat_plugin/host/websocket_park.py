"""The parked WebSocket that `spacechat serve` offers its plugins (hookspecs.WEBSOCKET_PARK, #16).

uvicorn's websockets-sansio protocol (what `ws="auto"` picks when `websockets` is installed)
runs the ASGI app in a task for as long as the connection lasts; a realtime stream adds its own
reader task, and the app's call chain, scope and uvicorn's per-connection objects stay with it:
~35 KiB of server memory per idle WebSocket. Once the stream has caught up, `park` takes the
transport from uvicorn's protocol (`transport.set_protocol`) for a slotted `ParkedWebSocket`, the
app returns, and what stays is the socket, this object and the `websockets` sans-I/O
`ServerProtocol` uvicorn made (`protocol.conn`), which goes on parsing what the client sends:
its pings answered, its close frame given the closing handshake, size limits and protocol
errors handled as the library does. Nothing here parses frames.

What the stream writes are frames the bus made once for every parked WebSocket
(realtime/bus.py `ws_frame`): uncompressed and unmasked, as a server sends them when no extension
was negotiated. With per-message-deflate each connection compresses with a context of its own and
no bytes can be shared, so such a connection is not parked (`spacechat serve` does not offer the
extension unless `realtime.ws_per_message_deflate` is set).

Like host/fastpath.py this reads uvicorn internals, so it is offered only where fastpath offers
DIRECT_WRITE (TESTED_UVICORN), only for that protocol's module, and a protocol missing what it
reads is left alone (the WebSocket keeps its task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, SEND_EOF, Protocol
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from .reset import reset

WEBSOCKETS_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"
CLOSE_TIMEOUT = 10.0  # as uvicorn's: how long a closing handshake waits for the client's answer
KEEPALIVE_FAILED = 1011  # the code uvicorn's keepalive fails a silent peer with
INVALID_DATA = 1007  # a text message that is not UTF-8, as uvicorn closes it

Connection = tuple[Callable[[bytes], bool], Callable[[int], None], Callable[[], None], Callable[[], None]]


def _nothing(*args: Any) -> None:
    pass


class _Released:
    """What uvicorn's protocol holds in place of the transport it gave up: every call goes
    nowhere. When the app returns, uvicorn closes its transport; that must not close the socket
    a parked WebSocket now serves."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Callable[..., None]:
        return _nothing


class ParkedWebSocket(asyncio.Protocol):
    """The protocol of a WebSocket whose realtime stream carries on after its ASGI app returned
    (realtime/parked.py). Slots only: with the ServerProtocol, this is the host's share of an idle
    WebSocket's memory."""

    __slots__ = ("conn", "fragments", "on_closed", "on_text", "on_writable", "paused", "pinged", "transport")

    def __init__(
        self,
        transport: Any,
        conn: ServerProtocol,
        on_writable: Callable[[], None],
        on_closed: Callable[[], None],
        on_text: Callable[[str], bytes | None],
        fragments: list[bytes] | None = None,
    ) -> None:
        self.transport = transport
        self.conn = conn
        self.on_writable = on_writable
        self.on_closed = on_closed
        self.on_text = on_text
        self.fragments = fragments  # a text message arriving in fragments; None between messages
        self.paused = False
        self.pinged = False  # a keepalive ping is out, unanswered

    # --- what the stream calls (hookspecs.WEBSOCKET_PARK) ---------------------------------

    def write(self, frames: bytes) -> bool:
        """Whole frames now, or False (nothing written) while back-pressure holds or once the
        connection is closing; the stream then waits for `on_writable`."""
        if self.paused or self.conn.state is not OPEN:
            return False
        self.transport.write(frames)
        return True

    def end(self, code: int) -> None:
        """Close with `code`. The client answers with its close frame, and then the socket is
        closed (`data_received`); one that does not answer is closed after CLOSE_TIMEOUT."""
        if self.conn.state is not OPEN:
            return
        self.on_closed = _nothing  # the stream ended it: nothing to tell
        self.conn.send_close(code)
        self._send()
        # A client that has not answered by then is dropped: a close would wait for it to read
        # what the socket holds, which one not reading never does.
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, reset, self.transport)

    def abort(self) -> None:
        """Drop the connection now (a reset), discarding what the socket still holds: a client
        that took nothing for realtime.stall_seconds, which a closing handshake would wait on."""
        self.on_closed = _nothing  # the stream ended it: nothing to tell
        self.paused = True
        reset(self.transport)

    def beat(self) -> None:
        """Keepalive, once per realtime.heartbeat_seconds on the bus's heartbeat ticks (at most
        15 s) rather than a timer per connection as uvicorn keeps: a protocol ping each time,
        busy or idle, and a client that has not answered the previous one by the next is dead
        (a peer gone without a FIN sends nothing, and what is written to it would sit in the
        kernel's buffer for many minutes): fail the connection (1011, as uvicorn does) and end
        the stream.

        Not while the socket is backed up: the client cannot answer a ping still in our buffer.
        A live client that drains gets a fresh round (`resume_writing`); one that takes nothing
        for realtime.stall_seconds (dead, or alive and not reading) is dropped by the stream
        (`abort`, realtime/parked.py), and nothing more is written to it meanwhile."""
        conn = self.conn
        if self.paused or conn.state is not OPEN:
            return
        if self.pinged:
            conn.fail(KEEPALIVE_FAILED, "keepalive ping timeout")
            self._send()
            self._gone()
            return
        self.pinged = True
        conn.send_ping(b"")
        self._send()

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        for frame in conn.events_received():
            if not isinstance(frame, Frame):  # (the opening handshake's request was uvicorn's)
                continue
            opcode = frame.opcode
            if opcode is Opcode.TEXT:
                if frame.fin:
                    self._text(bytes(frame.data))
                else:
                    self.fragments = [bytes(frame.data)]
            elif opcode is Opcode.CONT:
                if self.fragments is not None:  # of a text message (a binary one's are dropped)
                    self.fragments.append(bytes(frame.data))
                    if frame.fin:
                        text, self.fragments = b"".join(self.fragments), None
                        self._text(text)
            elif opcode is Opcode.BINARY:
                self.fragments = None
            elif opcode is Opcode.PONG:
                self.pinged = False
            # PING: the library queued the pong. CLOSE: it queued the answer and the end of the
            # connection; `_send` writes them and closes the socket, and the stream ends.
        self._send()

    def _text(self, data: bytes) -> None:
        if self.conn.state is not OPEN:
            return  # closing: the library discards what follows a close frame; so do we
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.conn.fail(INVALID_DATA, "invalid UTF-8")
            return
        self._answer(text)

    def _answer(self, text: str) -> None:
        reply = self.on_text(text)
        if reply is not None:
            self.transport.write(reply)

    def _send(self) -> None:
        """Write what the library has to send (pongs, close frames); when it says the TCP
        connection ends here (after the closing handshake, or failing it), close the socket."""
        out = self.conn.data_to_send()
        if not out:
            return
        self.transport.write(b"".join(out))
        if SEND_EOF in out:
            self.transport.close()

    def _gone(self) -> None:
        on_closed, self.on_closed = self.on_closed, _nothing
        on_closed()

    def pause_writing(self) -> None:
        # The client is not reading: stop reading it too, as uvicorn does while the app has not
        # taken its last message, so what it sends (pings to answer) cannot grow our buffer.
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self.pinged = False  # it reads again: answering our next ping is a fresh round
        self.transport.resume_reading()
        if self.conn.state is OPEN:
            self.on_writable()

    def eof_received(self) -> bool | None:
        return None  # the client finished sending: close (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        # Paused for good: nothing more is written and no keepalive runs. (Not the library's
        # receive_eof: that logs "connection closed" at INFO for every one, which uvicorn's
        # own protocol never has it do.)
        self.paused = True
        self._gone()


def _forget_handshake(conn: ServerProtocol) -> None:
    """Let go of the opening handshake's request. The ServerProtocol's parser is one generator
    that parsed the handshake and goes on parsing frames, keeping the request it parsed (every
    header: a browser's cookies and user agent too) as a local for the connection's life, ~4 KiB.
    Waiting at a frame boundary (suspended in `StreamReader.at_eof`, nothing buffered), a fresh
    frame parser (`Protocol.parse`, what that generator runs once the handshake is done) goes on
    exactly where it stands: the rest of the parser's state is the protocol's own. Anywhere else
    (mid-frame) the old parser is kept."""
    inner: Any = getattr(conn, "parser", None)
    while getattr(inner, "gi_yieldfrom", None) is not None:
        inner = inner.gi_yieldfrom
    reader: Any = getattr(conn, "reader", None)
    if getattr(inner, "gi_code", None) is StreamReader.at_eof.__code__ and not reader.buffer:
        conn.parser = Protocol.parse(conn)
        next(conn.parser)


def park_websocket(
    server_send: Any,
    on_writable: Callable[[], None],
    on_closed: Callable[[], None],
    on_text: Callable[[str], bytes | None],
) -> Connection | None:
    """Take an accepted WebSocket away from uvicorn's websockets-sansio protocol, so its ASGI app
    can return and the connection go on (hookspecs.WEBSOCKET_PARK): (write, end, beat, abort), or None
    when it cannot be done now (another protocol, an extension negotiated, back-pressure, the
    client gone or closing). uvicorn forgets the connection: its keepalive timers are stopped
    (`beat` takes over), it is no longer among the connections it shuts down (the bus ends
    parked streams when the server stops, with 1012 as uvicorn would), and what its protocol
    does after the app returns reaches a released transport."""
    protocol = getattr(server_send, "__self__", None)
    if protocol is None or type(protocol).__module__ != WEBSOCKETS_SANSIO:
        return None
    try:
        conn, transport = protocol.conn, protocol.transport
        if (
            not protocol.handshake_complete
            or protocol.initial_response is not None
            or protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or not isinstance(conn, ServerProtocol)
            or conn.state is not OPEN
            or conn.extensions
            or transport.is_closing()
            or transport.get_protocol() is not protocol
        ):
            return None
        frames, text_in_progress = protocol.frames, protocol.curr_msg_data_type == "text"
        received: asyncio.Queue[dict[str, Any]] = protocol.queue
        protocol.stop_keepalive()
    except AttributeError:  # a uvicorn whose protocol differs from the one this was written for
        return None
    # Messages uvicorn took in that the app's reader has not: answered below, as the app would.
    queued: list[str] = []
    while not received.empty():
        text = received.get_nowait().get("text")
        if text is not None:
            queued.append(text)
    _forget_handshake(conn)
    protocol.connections.discard(protocol)
    protocol.transport = _Released()
    parked = ParkedWebSocket(
        transport, conn, on_writable, on_closed, on_text, list(frames) if frames and text_in_progress else None
    )
    transport.set_protocol(parked)
    if not transport.is_reading():  # uvicorn pauses reading until the app takes a message
        transport.resume_reading()
    for text in queued:
        parked._answer(text)
    return parked.write, parked.end, parked.beat, parked.abort
