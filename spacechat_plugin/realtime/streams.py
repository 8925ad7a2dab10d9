"""The open realtime streams, by credential and by user, and the hand-off from commit to fan-out.

Ending access (a revoked session or token, a deactivated user, a new password) closes the
matching streams at once; the client then reconnects and is refused or re-authorised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..events import Event
from .bus import Bus, Subscription

log = logging.getLogger("spacechat.realtime")


@dataclass(slots=True)
class _Batch:
    """What is published during one turn of the loop."""

    events: list[Event]
    spread: bool


class Streams:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._by_key: dict[str, set[Subscription]] = {}
        self._pending: _Batch | None = None  # published this turn, fanned out on the next

    def subscribe(self, keys: Iterable[str | None], visible: Callable[[Any], bool]) -> Subscription:
        """A bus subscription registered under its credential and user, so ending access ends it."""
        subscription = self.bus.subscribe(visible)
        for key in keys:
            if key:
                self._by_key.setdefault(key, set()).add(subscription)
        return subscription

    def unsubscribe(self, keys: Iterable[str | None], subscription: Subscription) -> None:
        subscription.close()
        for key in keys:
            streams = self._by_key.get(key or "")
            if streams is not None:
                streams.discard(subscription)
                if not streams:
                    del self._by_key[key or ""]

    def end(self, key: str) -> None:
        """Close every stream opened under a credential or user id."""
        for subscription in list(self._by_key.pop(key, ())):
            subscription.close()

    def publish_soon(self, events: list[Event], *, spread: bool = False) -> None:
        """Fan out on the loop's next turn, after the tasks just answered by the commit have
        run: a send's 201 does not wait for the fan-out (which may write to every subscriber's
        socket at once). Every publish goes this way, so events keep their order.

        What is published during one turn of the loop (a group commit, reply deltas, presence)
        is fanned out together (#16): one pass over the subscribers and one write to each, not
        one per publish.

        `spread` (presence, typing: Bus.publish) holds for the batch only while everything in
        it asked for it: a message joining the turn's batch is served to everyone at once."""
        pending = self._pending
        if pending is not None:
            pending.events.extend(events)
            pending.spread = pending.spread and spread
            return
        self._pending = pending = _Batch(list(events), spread)
        asyncio.get_running_loop().call_soon(self._flush, pending)

    def publish_live(self, event: Event) -> None:
        """Fan out a live-only event (a stream delta): no log, no transaction."""
        assert event.live_only
        self.publish_soon([event])

    def publish_live_many(self, events: list[Event]) -> None:
        """Fan out several live-only events together: one run per channel, one write per stream."""
        assert all(event.live_only for event in events)
        self.publish_soon(events, spread=True)

    def publish_to(self, user_id: str, event: Event) -> int:
        """Send a live-only event to one person's open streams (on the loop's next turn, after
        what was published before it); each stream still checks that it may see it."""
        assert event.live_only
        self._pending = None  # what is published after this goes after it
        asyncio.get_running_loop().call_soon(self._deliver, user_id, event)
        return len(self._by_key.get(user_id, ()))

    def streams_of(self, user_id: str) -> int:
        """How many streams a person has open now."""
        return len(self._by_key.get(user_id, ()))

    def _deliver(self, user_id: str, event: Event) -> None:
        try:
            self.bus.deliver_to(list(self._by_key.get(user_id, ())), event)
        except Exception:
            log.exception("delivering an event to one person failed")

    def _flush(self, pending: _Batch) -> None:
        if self._pending is pending:
            self._pending = None
        self._publish(pending.events, pending.spread)

    def _publish(self, events: list[Event], spread: bool = False) -> None:
        try:
            self.bus.publish(events, spread=spread)
        except Exception:  # a broken subscriber must not stop the fan-out for everyone after
            log.exception("publishing events failed")
