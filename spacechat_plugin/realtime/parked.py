"""A caught-up event stream with no task, no queue and no ASGI call chain of its own (#16).

An idle SSE stream used to hold, for as long as it was open, two tasks (its live loop and a
watcher for the client leaving) and the whole ASGI call chain of its request (every middleware's
frame, the request, the scope): ~27 KiB of server memory each, five times the raw-asyncio limit.
Once a stream has replayed and sent `ready`, what it does from then on is small enough to run as
callbacks: write what the bus has for it, a heartbeat on the tick, `lagged` when it falls behind,
and end. So the serving host hands the connection over (hookspecs.DIRECT_WRITE's `park`): the
request's call chain returns, and what stays is the socket, the subscription and this object.

Every event, heartbeat or close reaches it through `Subscription.wake`, which calls `serve` in
place of resolving a waiter. `serve` is `stream._live`'s loop body: it writes (synchronously, bytes
already made) or, when the socket is full, leaves the cursor where it is and is called again when
the host says the socket drains. Ending (closed, cut, the client gone) unregisters the stream on
the loop's next turn, never while the bus walks its subscribers.

The same object carries SSE and WebSocket streams. The one difference is how bytes are framed,
and the trick that keeps that off the hot path is that this object never frames anything: the
bus makes every batch's bytes once per transport (`bus.Framing`, `Bus.body`) and this stream
writes the shared bytes object its framing names. Once per heartbeat interval the host also
checks the client is there (`beat`): a WebSocket host by a protocol ping (host/websocket_park.py
`ParkedWebSocket`), an SSE host by asking the kernel whether anything was acknowledged lately
while the heartbeats are retransmitted (host/reset.py `unanswered`).

A client alive but not reading (a frozen tab, a suspended process) keeps its socket full for as
long as it lives: its kernel acknowledges the server's zero-window probes, so TCP never gives up,
and the `lagged` it is owed can never be written. On the heartbeat tick, a stream found blocked
since a tick `Bus.stall_seconds` ago is dropped (`abort`: the connection is reset, what its
socket holds discarded) and unregistered; its client reconnects with its cursor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .bus import SSE, TICK, Framing, Run, Subscription


def _nothing() -> None:
    pass


class ParkedStream:
    """The live phase of one stream, driven by the bus and the host instead of a task."""

    __slots__ = (
        "_abort",
        "_beat",
        "_blocked_since",
        "_end_connection",
        "_framing",
        "_on_end",
        "_write",
        "finished",
        "subscription",
    )

    def __init__(self, subscription: Subscription, on_end: Callable[[], None], framing: Framing = SSE) -> None:
        self.subscription = subscription
        self._on_end = on_end
        self._framing = framing
        self._write: Callable[[bytes], bool] = lambda body: False
        self._end_connection: Callable[[], None] = _nothing
        self._beat: Callable[[], None] = _nothing
        self._abort: Callable[[], None] = _nothing
        self._blocked_since: float | None = None  # the first tick that found the socket full
        self.finished = False

    def start(
        self,
        write: Callable[[bytes], bool],
        end: Callable[[], None],
        beat: Callable[[], None] = _nothing,
        abort: Callable[[], None] | None = None,
    ) -> None:
        """Take over from the stream's task: deliver what came since `ready`, then wait for wakes.
        `write` takes bytes framed as `framing` says; `beat` runs once per heartbeat interval;
        `abort` drops the connection at once (a stalled client; `end` where the host has none)."""
        self._write, self._end_connection, self._beat = write, end, beat
        self._abort = end if abort is None else abort
        subscription = self.subscription
        subscription.bus.parked[self._framing.name] += 1
        subscription.framing = self._framing
        subscription.direct = write
        subscription.on_wake = self.serve
        self.serve()

    def serve(self, reason: Any = None) -> None:
        """One turn of the live loop; called by every wake, and when the socket drains."""
        if self.finished:
            return
        if reason is not TICK:
            self._deliver()
            return
        subscription = self.subscription
        if subscription.blocked and self._stalled():
            return
        wrote = self._deliver()
        if wrote is None:  # stopped, or the socket is full
            return
        beat = not wrote and subscription.beat_due()  # idle since the tick before: a heartbeat
        if beat and not self._write(subscription.bus.heartbeat(self._framing)):
            subscription.blocked = True  # a full socket, even with nothing new: a stall is timed from here
        if subscription.bus.keepalive_tick:
            self._beat()  # may find the client gone: then the host calls connection_lost

    def _deliver(self) -> bool | None:
        """Write what the bus has for this stream: whether there was anything, or None when the
        stream stopped (closed, cut) or its socket is full (`drained` serves it when it empties)."""
        subscription = self.subscription
        if subscription.lagged or subscription.closed:
            self._stop()
            return None
        if subscription.blocked:
            return None
        runs = self._pending()
        if runs is None:  # the ring overwrote its cursor
            subscription.lagged = True
            self._stop()
            return None
        bus = subscription.bus
        shown = subscription.shown(runs) if runs else runs
        if shown:
            if not self._write(bus.body(shown, runs, self._framing)):
                subscription.blocked = True  # back-pressure: the cursor stays until `drained`
                return None
            bus.direct_writes += 1
            subscription.delivered(shown)
        subscription.pos = bus.head
        subscription.private = []
        return bool(shown)

    def _stop(self) -> None:
        subscription = self.subscription
        if subscription.lagged:
            # Written once the socket takes it (a full socket is why it fell behind).
            if self._write(self._framing.control("lagged", {"resume_after": subscription.sent})):
                self._end()
            else:
                subscription.blocked = True
        else:
            self._end()

    def _stalled(self) -> bool:
        """On a tick that finds the socket full: drop the connection (True) once it has been
        full since a tick at least `stall_seconds` ago."""
        bus = self.subscription.bus
        now = asyncio.get_running_loop().time()
        if self._blocked_since is None:
            self._blocked_since = now
            return False
        if now - self._blocked_since < bus.stall_seconds:
            return False
        bus.stalled_total += 1
        self._finish()
        self._abort()
        asyncio.get_running_loop().call_soon(self._on_end)
        return True

    def drained(self) -> None:
        """The host's socket took what was queued (its `on_writable`): catch up."""
        self.subscription.blocked = False
        self._blocked_since = None
        self.serve()

    def _finish(self) -> None:
        self.finished = True
        self.subscription.on_wake = None
        self.subscription.bus.parked[self._framing.name] -= 1

    def _pending(self) -> list[Run] | None:
        """What the bus holds after the cursor, then this subscriber's own; None when cut."""
        subscription = self.subscription
        bus = subscription.bus
        runs: list[Run] = []
        if subscription.pos < bus.head:
            found = bus.runs_after(subscription.pos)
            if found is None:
                return None
            runs = found
        if subscription.private:
            runs = [*runs, *subscription.private]
        return runs

    def connection_lost(self) -> None:
        """The client left (the host's callback): unregister, write nothing more."""
        if not self.finished:
            self._finish()
            asyncio.get_running_loop().call_soon(self._on_end)

    def _end(self) -> None:
        self._finish()
        self._end_connection()
        # Unregistering touches the bus's set of subscribers, which publish may be walking now.
        asyncio.get_running_loop().call_soon(self._on_end)
