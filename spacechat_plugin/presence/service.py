"""Presence (active / away) and typing indicators, as live-only events.

Neither is ever written to the log. Both are coalesced so that their cost does not grow with how
often people type or switch tabs: changes are gathered and sent at most once per `tick` (a
second), one `presence.changed` per organisation listing who changed, one `typing.changed` per
thread (or per channel, for a new thread being written) carrying everyone typing there now, and
only when that set changed. A person typing for a minute costs two events (started, stopped),
however many keystrokes the client reports (it reports at most every few seconds; the server
keeps the set and lets a report lapse after `typing_ttl`).

Presence, as in Slack: a person is `active` while one of their signed-in apps (a session, not a
script's API token) has its realtime stream open and has not said it is `away` (hidden, idle);
with none open, `away`. Every event
goes out through the bus and the one visibility check like any other (presence needs
`members:read`, typing is seen by those who may read the channel).

With several gateways (issue 17) a person's streams may be open on any of them. Each gateway
tells the others, over the bus's control subject, who is active and who is typing where through
it (`share`: what changed at each tick, and all of it every `SYNC_TICKS` ticks, so a gateway
that missed a message or just started catches up); each combines that with its own and sends
its streams the whole picture's changes. What a gateway that went silent said is forgotten
(`alive`), so the people it carried turn away and stop typing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events import Actor, Event, PresenceChanged, TypingChanged

log = logging.getLogger("spacechat.presence")

ACTIVE, AWAY = "active", "away"
STATUSES = (ACTIVE, AWAY)
# Every this many ticks a gateway tells the others everything it holds, not only what changed.
SYNC_TICKS = 5
SYNC = "presence.sync"  # the control message's kind
# A page's report (`POST /v1/me/presence`), told to every gateway: its stream may be on another.
REPORT = "presence.report"


@dataclass
class Person:
    org_id: str
    streams: dict[str, int] = field(default_factory=dict)  # credential -> open streams
    away: set[str] = field(default_factory=set)  # credentials whose page said it is away
    shown: str = AWAY  # what the others were last told
    elsewhere: set[str] = field(default_factory=set)  # other gateways where they are active
    shared: str = AWAY  # what the other gateways were last told of them here

    @property
    def here(self) -> str:
        """Their presence through this gateway's streams alone."""
        return ACTIVE if any(credential not in self.away for credential in self.streams) else AWAY

    @property
    def status(self) -> str:
        return ACTIVE if self.elsewhere or self.here == ACTIVE else AWAY


Place = tuple[str, str, str | None]  # (org, channel, thread or None for a new thread)


class Presence:
    def __init__(self, publish: Any, *, tick: float = 1.0, typing_ttl: float = 6.0) -> None:
        """`publish` fans out a list of live-only events at once (Streams.publish_live_many)."""
        self.publish, self.tick, self.typing_ttl = publish, tick, typing_ttl
        self.people: dict[str, Person] = {}
        self._changed: set[str] = set()  # people whose status may have changed since the last tick
        self._typing: dict[Place, dict[str, float]] = {}  # place -> {user: lapses at}
        self._told: dict[Place, frozenset[str]] = {}  # place -> the typists last sent
        self._team: dict[str, str | None] = {}  # channel -> team, for the envelope
        self.events_sent = 0
        # Several gateways: `share(kind, data)` tells the others (Relay.control); `alive()` names
        # the gateways still heard from. None with one process.
        self.gateway_id = ""
        self.share: Callable[[str, dict[str, Any]], None] | None = None
        self.alive: Callable[[], set[str]] = set
        self._typing_elsewhere: dict[str, dict[Place, frozenset[str]]] = {}  # gateway -> place -> typists
        self._shared_typing: dict[Place, frozenset[str]] = {}  # what the others were last told
        self._ticks = 0

    # -- presence -----------------------------------------------------------------------------

    def connected(self, user_id: str, org_id: str, credential: str) -> None:
        person = self.people.setdefault(user_id, Person(org_id))
        person.streams[credential] = person.streams.get(credential, 0) + 1
        self._changed.add(user_id)

    def disconnected(self, user_id: str, credential: str) -> None:
        person = self.people.get(user_id)
        if person is None:
            return
        left = person.streams.get(credential, 0) - 1
        if left > 0:
            person.streams[credential] = left
        else:
            person.streams.pop(credential, None)
            person.away.discard(credential)
        self._changed.add(user_id)

    def report(self, user_id: str, org_id: str, credential: str, status: str) -> str:
        """A page says it is `active` or `away`; returns the person's presence after it."""
        assert status in STATUSES
        person = self.people.setdefault(user_id, Person(org_id))
        if status == AWAY:
            person.away.add(credential)
        else:
            person.away.discard(credential)
        self._changed.add(user_id)
        return person.status

    def snapshot(self, org_id: str) -> dict[str, str]:
        """Everyone of an organisation known to be active now (the others are away): as it is,
        not as the streams were last told (that waits for the tick), so what another gateway
        shared is in it as soon as it is heard."""
        people = self.people.items()
        return {uid: ACTIVE for uid, person in people if person.org_id == org_id and person.status == ACTIVE}

    def _presence_events(self) -> list[Event]:
        by_org: dict[str, dict[str, str]] = {}
        for user_id in self._changed:
            person = self.people.get(user_id)
            if person is None:
                continue
            status = person.status
            if status != person.shown:
                person.shown = status
                by_org.setdefault(person.org_id, {})[user_id] = status
            gone = not person.streams and not person.away and not person.elsewhere and person.shared == AWAY
            if gone and status == AWAY:
                del self.people[user_id]  # nothing left to remember
        self._changed.clear()
        return [Event(PresenceChanged(users=users), org_id=org_id) for org_id, users in by_org.items()]

    # -- typing -------------------------------------------------------------------------------

    def typing(self, user_id: str, channel: Mapping[str, Any], thread_id: str | None, on: bool) -> None:
        place: Place = (channel["org_id"], channel["id"], thread_id)
        self._team[channel["id"]] = channel.get("team_id")
        typists = self._typing.setdefault(place, {})
        if on:
            typists[user_id] = time.monotonic() + self.typing_ttl
        else:
            typists.pop(user_id, None)

    def observe(self, events: Iterable[Event]) -> None:
        """After each commit: a person who posted has stopped typing there."""
        for event in events:
            if event.event_type != "message.created" or event.actor.kind != "user" or not event.channel_id:
                continue
            user_id, org_id = event.actor.id or "", event.org_id or ""
            for place in ((org_id, event.channel_id, event.thread_id), (org_id, event.channel_id, None)):
                typists = self._typing.get(place)
                if typists is not None:
                    typists.pop(user_id, None)

    def _typing_events(self, now: float) -> list[Event]:
        out = []
        elsewhere: dict[Place, set[str]] = {}
        for places in self._typing_elsewhere.values():
            for place, users in places.items():
                elsewhere.setdefault(place, set()).update(users)
        for place in set(self._typing) | set(elsewhere) | set(self._told):
            typists = self._typing.setdefault(place, {})
            for user_id in [u for u, lapses in typists.items() if lapses <= now]:
                del typists[user_id]
            current = frozenset(typists) | frozenset(elsewhere.get(place, ()))
            if current != self._told.get(place, frozenset()):
                org_id, channel_id, thread_id = place
                out.append(
                    Event(
                        TypingChanged(users=sorted(current)),
                        actor=Actor("system"),
                        org_id=org_id,
                        team_id=self._team.get(channel_id),
                        channel_id=channel_id,
                        thread_id=thread_id,
                    )
                )
            if current:
                self._told[place] = current
            else:
                self._told.pop(place, None)
                del self._typing[place]
        return out

    def typists(self, channel_id: str) -> dict[str | None, list[str]]:
        """Who is typing in a channel now, by thread (None: a new thread): as last sent."""
        return {place[2]: sorted(users) for place, users in self._told.items() if place[1] == channel_id and users}

    # -- several gateways -----------------------------------------------------------------------

    def _share(self) -> None:
        """Tell the other gateways what changed here since the last tick (all of it every
        SYNC_TICKS ticks): who is active through this gateway, who is typing where."""
        if self.share is None:
            return
        self._ticks += 1
        full = self._ticks % SYNC_TICKS == 0
        people: dict[str, list[str]] = {}
        for user_id, person in self.people.items():
            here = person.here
            if full or here != person.shared:
                person.shared = here
                if full and here == AWAY:
                    continue  # a full sync lists the active only: the rest are away
                people[user_id] = [person.org_id, here]
        typing: list[list[Any]] = []
        now_typing = {place: frozenset(users) for place, users in self._typing.items() if users}
        for place in set(now_typing) | set(self._shared_typing):
            users = now_typing.get(place, frozenset())
            # A full sync lists who types now (the receiver drops the rest); between syncs,
            # every place whose typists changed, an empty list when the last one stopped.
            if users if full else users != self._shared_typing.get(place, frozenset()):
                typing.append([*place, self._team.get(place[1]), sorted(users)])
        self._shared_typing = now_typing
        if full or people or typing:
            self.share(SYNC, {"gateway": self.gateway_id, "full": full, "people": people, "typing": typing})

    def heard(self, data: Mapping[str, Any]) -> None:
        """What another gateway shared (`_share`): taken into the next tick's events."""
        gateway = str(data.get("gateway") or "")
        if not gateway or gateway == self.gateway_id:
            return
        if data.get("full"):
            listed = data.get("people") or {}
            for user_id, person in self.people.items():
                if gateway in person.elsewhere and user_id not in listed:
                    person.elsewhere.discard(gateway)
                    self._changed.add(user_id)
            self._typing_elsewhere[gateway] = {}
        for user_id, (org_id, status) in (data.get("people") or {}).items():
            person = self.people.setdefault(str(user_id), Person(str(org_id)))
            if status == ACTIVE:
                person.elsewhere.add(gateway)
            else:
                person.elsewhere.discard(gateway)
            self._changed.add(str(user_id))
        places = self._typing_elsewhere.setdefault(gateway, {})
        for org_id, channel_id, thread_id, team_id, users in data.get("typing") or []:
            place: Place = (str(org_id), str(channel_id), thread_id)
            self._team[str(channel_id)] = team_id
            if users:
                places[place] = frozenset(str(u) for u in users)
            else:
                places.pop(place, None)

    def _forget_silent(self) -> None:
        """What gateways no longer heard from said: forgotten (their people's streams are gone)."""
        if self.share is None:
            return
        alive = self.alive()
        for gateway in [g for g in self._typing_elsewhere if g not in alive]:
            del self._typing_elsewhere[gateway]
        for user_id, person in self.people.items():
            silent = {g for g in person.elsewhere if g not in alive}
            if silent:
                person.elsewhere -= silent
                self._changed.add(user_id)

    # -- the tick -----------------------------------------------------------------------------

    def flush(self, now: float | None = None) -> list[Event]:
        """Everything that changed since the last flush, as events (and published)."""
        self._share()
        self._forget_silent()
        events = self._presence_events() + self._typing_events(time.monotonic() if now is None else now)
        # One publish for the whole tick: each stream gets one write with every change in it,
        # not one per thread someone types in (bench/fanout.py --typists: a publish per event
        # held the loop ~10 x 1,000 writes at each tick, and a message's fan-out behind it).
        if events:
            self.publish(events)
        self.events_sent += len(events)
        return events

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.flush()
            except Exception:
                log.exception("sending presence and typing failed")
