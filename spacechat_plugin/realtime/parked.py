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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..events import now_rfc3339
from .bus import TICK, Run, Subscription, control_frame


class ParkedStream:
    """The live phase of one stream, driven by the bus and the host instead of a task."""

    __slots__ = ("_end_connection", "_on_end", "_write", "finished", "subscription")

    def __init__(self, subscription: Subscription, on_end: Callable[[], None]) -> None:
        self.subscription = subscription
        self._on_end = on_end
        self._write: Callable[[bytes], bool] = lambda body: False
        self._end_connection: Callable[[], None] = lambda: None
        self.finished = False

    def start(self, write: Callable[[bytes], bool], end: Callable[[], None]) -> None:
        """Take over from the stream's task: deliver what came since `ready`, then wait for wakes."""
        self._write, self._end_connection = write, end
        self.subscription.bus.parked += 1
        self.subscription.direct = write
        self.subscription.on_wake = self.serve
        self.serve()

    def serve(self, reason: Any = None) -> None:
        """One turn of the live loop; called by every wake, and when the socket drains."""
        if self.finished:
            return
        subscription = self.subscription
        if subscription.lagged:
            # Written once the socket takes it (a full socket is why it fell behind).
            if self._write(control_frame("lagged", {"resume_after": subscription.sent})):
                self._end()
            return
        if subscription.closed:
            self._end()
            return
        runs = self._pending()
        if runs is None:  # the ring overwrote its cursor
            subscription.lagged = True
            self.serve()
            return
        bus = subscription.bus
        shown = subscription.shown(runs) if runs else runs
        if shown:
            if not self._write(bus.body(shown, runs)):
                return  # back-pressure: the cursor stays, the host calls again when it drains
            bus.direct_writes += 1
            subscription.delivered(shown)
        elif reason is TICK:
            self._write(control_frame("heartbeat", {"ts": now_rfc3339()}))
        subscription.pos = bus.head
        subscription.private = []

    def _finish(self) -> None:
        self.finished = True
        self.subscription.on_wake = None
        self.subscription.bus.parked -= 1

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
