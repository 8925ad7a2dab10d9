"""Dropping a connection whose client takes nothing (realtime.stall_seconds, #16), or whose
client is gone without a word."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

_LINGER_NOW = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets and discards the queue


def reset(transport: Any) -> None:
    """Close `transport` with a TCP reset, discarding what it and the kernel still hold to send.

    An asyncio transport's `abort()` drops only its own buffer: the socket's close then leaves
    the kernel's send queue (MBs behind a client that is not reading) to be delivered, and the
    orphaned socket to probe a zero window until the kernel gives up on it. With a zero linger
    the close is a reset and all of it is freed at once; the client sees the connection reset."""
    if transport.is_closing():  # its socket may be closed, and its number another's: abort only
        transport.abort()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NOW)
    transport.abort()


# Linux's TCP_USER_TIMEOUT (socket has it from Python 3.6 on Linux; elsewhere absent).
_USER_TIMEOUT: int | None = getattr(socket, "TCP_USER_TIMEOUT", None)


def limit_unacknowledged(transport: Any, seconds: float) -> None:
    """Have the kernel drop `transport`'s connection when what it sent stays unacknowledged for
    `seconds` (TCP_USER_TIMEOUT). A client that vanished (a laptop closed, a phone out of
    coverage, a NAT that forgot it) sends no FIN and no reset: the server hears nothing, and
    Linux retransmits the stream's heartbeats for ~15 minutes (tcp_retries2) before giving up,
    all that time holding the stream. With the limit, the heartbeat after the client went
    fails the connection `seconds` later, and the stream is forgotten as on any close. A client
    that is there acknowledges within a round trip, however little it reads (a full receive
    window is the stall limit's business, `reset` above)."""
    sock = transport.get_extra_info("socket")
    if _USER_TIMEOUT is None or sock is None or transport.is_closing():
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, _USER_TIMEOUT, max(1, round(seconds * 1000)))
