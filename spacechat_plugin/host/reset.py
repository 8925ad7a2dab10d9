"""Dropping a connection whose client takes nothing (realtime.stall_seconds, #16)."""

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
