"""Dropping a connection whose client takes nothing (realtime.stall_seconds, #16), and telling a
client that is gone without a word."""

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


# Linux's TCP_INFO (`struct tcp_info`, linux/tcp.h): the byte `tcpi_retransmits` (offset 2, RTO
# timeouts since the last acknowledgement) and the u32 `tcpi_last_ack_recv` (offset 56, ms since
# an acknowledgement last came). Other systems have no TCP_INFO here: nothing is found gone.
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)
_LAST_ACK_RECV = struct.Struct("=I")
_INFO_SIZE = 104


def unanswered(transport: Any, seconds: float) -> bool:
    """Whether the peer of `transport` is gone without a word: what was sent to it is being
    retransmitted and nothing at all has been acknowledged for `seconds`.

    A client that vanished (a laptop shut, a phone out of coverage, a NAT that forgot it) sends
    no FIN and no reset, and Linux retransmits to it for ~15 minutes (tcp_retries2) before
    giving up. A client that is there acknowledges within a round trip, however little it
    reads: one not reading at all answers the zero-window probes, which are not retransmissions
    (its full socket is the stall limit's business). The kernel's own TCP_USER_TIMEOUT cannot
    tell these apart: it also ends a zero-window connection, silently, where the stall limit
    resets it so the client knows."""
    sock = transport.get_extra_info("socket")
    if _TCP_INFO is None or sock is None:
        return False
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_SIZE)
    except OSError:
        return False
    if len(info) < 60 or info[2] == 0:
        return False
    return bool(_LAST_ACK_RECV.unpack_from(info, 56)[0] >= seconds * 1000)
