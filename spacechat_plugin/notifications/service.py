"""Notifications: each person's levels (stored, cached in memory) and, for every finished
message, who should hear about it (notifications/rule.py), told through their own realtime
streams as a live-only `notification.created`.

The work happens after the commit, on a queue of its own, never on the send path: the commit
hands over the message (`observe`), and one task works out the recipients and delivers. Who
follows a thread (its human authors) is kept per thread in a bounded cache, filled from the store
on first need and kept current from the messages that pass by. Every delivery still goes through
the recipient's stream's own permission check (the one `visible` of identity/permissions.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import BadRequest
from ..events import Actor, Event, NotificationCreated
from ..identity.permissions import Access, readable
from ..realtime.streams import Streams
from ..store import identity
from ..store import messages as message_store
from ..store import notifications as store
from ..store.db import Database
from . import rule

log = logging.getLogger("spacechat.notifications")

FOLLOWED_THREADS_KEPT = 20_000
QUEUE_LIMIT = 10_000


class Notifier:
    def __init__(self, db: Database, access: Access, streams: Streams) -> None:
        self.db, self.access, self.streams = db, access, streams
        self._by_user: dict[str, dict[str, str]] = {}  # user -> {channel: level}, defaults left out
        self._everything: dict[str, set[str]] = {}  # channel -> people whose level there is `all`
        self._followers: OrderedDict[str, set[str]] = OrderedDict()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.delivered = 0  # notifications handed to streams (for tests and metrics)
        # With several gateways (issue 17) a level set on one is told to the others.
        self.share: Callable[[str, dict[str, str]], None] | None = None

    # -- levels -------------------------------------------------------------------------------

    async def load(self) -> None:
        self._by_user, self._everything = {}, {}
        for user_id, channel_id, level in await store.all_levels(self.db):
            self._remember(user_id, channel_id, level)

    def remember(self, user_id: str, channel_id: str, level: str) -> None:
        """A level another gateway set (it is in the database already)."""
        if level in rule.LEVELS:
            self._remember(user_id, channel_id, level)

    def _remember(self, user_id: str, channel_id: str, level: str) -> None:
        mine = self._by_user.setdefault(user_id, {})
        if level == rule.DEFAULT_LEVEL:
            mine.pop(channel_id, None)
        else:
            mine[channel_id] = level
        everyone = self._everything.setdefault(channel_id, set())
        if level == "all":
            everyone.add(user_id)
        else:
            everyone.discard(user_id)

    def level(self, user_id: str, channel_id: str) -> str:
        return self._by_user.get(user_id, {}).get(channel_id, rule.DEFAULT_LEVEL)

    def levels(self, user_id: str) -> dict[str, str]:
        """The channels where a person's level is not the default."""
        return dict(self._by_user.get(user_id, {}))

    async def set_level(self, user_id: str, channel_id: str, level: str) -> str:
        if level not in rule.LEVELS:
            raise BadRequest(
                f"level must be one of {', '.join(rule.LEVELS)}",
                code="invalid_request",
                details=[{"path": "level", "message": "unknown level"}],
            )
        await self.db.write(lambda tx: store.set_level(tx, user_id, channel_id, level, rule.DEFAULT_LEVEL))
        self._remember(user_id, channel_id, level)
        if self.share is not None:
            self.share("notification_level", {"user_id": user_id, "channel_id": channel_id, "level": level})
        return level

    # -- after each commit --------------------------------------------------------------------

    def observe(self, events: Iterable[Event]) -> None:
        """Called with every committed batch: finished messages are queued for `run`."""
        for event in events:
            kind = event.event_type
            if kind == "thread.created":
                self._started(event.payload.thread)  # type: ignore[attr-defined]
                continue
            if kind != "message.created" and kind != "message.completed":
                continue
            message: dict[str, Any] = event.payload.message  # type: ignore[attr-defined]
            if message.get("state") != "completed":
                continue  # an agent's reply is told about when it completes, with its text
            author = message.get("author") or {}
            followers = self._followers.get(message["thread_id"])
            if followers is not None and author.get("kind") == "user" and author.get("id"):
                followers.add(author["id"])
            try:
                self._queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("notifications fell behind: message %s was not notified", message["id"])

    def _started(self, thread: Mapping[str, Any]) -> None:
        """A new thread's only author so far is whoever started it: its followers are known
        without asking the store (the send that opened it is notified after this batch)."""
        creator = thread.get("created_by") or {}
        human = creator.get("kind") == "user" and creator.get("id")
        self._followers[thread["id"]] = {creator["id"]} if human else set()
        self._trim()

    def _trim(self) -> None:
        while len(self._followers) > FOLLOWED_THREADS_KEPT:
            self._followers.popitem(last=False)

    async def run(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self.notify(message)
            except Exception:
                log.exception("notifying about message %s failed", message.get("id"))

    # -- who hears about a message ------------------------------------------------------------

    async def followers(self, thread_id: str) -> set[str]:
        cached = self._followers.get(thread_id)
        if cached is None:
            cached = await store.thread_followers(self.db, thread_id)
            self._followers[thread_id] = cached
            self._trim()
        else:
            self._followers.move_to_end(thread_id)
        return cached

    async def recipients(self, message: Mapping[str, Any]) -> dict[str, str]:
        """Who should hear about `message`, and why (`{user_id: reason}`)."""
        channel = self.access.channels.get(message["channel_id"])
        if channel is None:
            return {}
        follows = await self.followers(message["thread_id"])
        message = await self._with_mentions(message)
        candidates = follows | rule.mentioned(message) | self._everything.get(channel["id"], set())
        if rule.is_direct(channel):
            candidates |= {member["id"] for member in await identity.channel_members(self.db, channel["id"])}
        candidates.discard((message.get("author") or {}).get("id") or "")
        if not candidates:
            return {}
        people = await store.people(self.db, sorted(candidates))
        found: dict[str, str] = {}
        for user_id, person in people.items():
            if person["kind"] != "human" or person["deactivated_at"] is not None:
                continue
            memberships = self.access.memberships(user_id)
            if not readable(channel, org_id=person["org_id"], role=person["role"], channels=memberships):
                continue
            why = rule.reason(
                message, channel, user_id, level=self.level(user_id, channel["id"]), follows_thread=user_id in follows
            )
            if why is not None:
                found[user_id] = why
        return found

    async def _with_mentions(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """The message with the ids it mentions: a message's JSON carries only its text, and its
        `@handles` were resolved to people when it was stored (message_mentions)."""
        if rule.mentioned(message) or "@" not in str(message.get("text") or ""):
            return message
        ids = await store.mentioned(self.db, message["id"])
        return {**message, "mentions": sorted(ids)} if ids else message

    async def notify(self, message: Mapping[str, Any]) -> int:
        """Tell every recipient of `message` through their open streams; returns how many."""
        found = await self.recipients(message)
        if not found:
            return 0
        channel = self.access.channels[message["channel_id"]]
        thread = await message_store.get_thread(self.db, message["thread_id"])
        author = message.get("author") or {}
        short = {
            "id": message["id"],
            "thread_id": message["thread_id"],
            "channel_id": message["channel_id"],
            "author": {"kind": author.get("kind"), "id": author.get("id")},
            "text": rule.excerpt(str(message.get("text") or "")),
            "created_at": message.get("created_at"),
        }
        for user_id, why in found.items():
            event = Event(
                NotificationCreated(
                    reason=why,
                    message=short,
                    channel_name=str(channel.get("name", "")),
                    thread_title=str((thread or {}).get("title", "")),
                ),
                actor=Actor(author.get("kind") or "system", author.get("id")),
                org_id=message["org_id"],
                team_id=message.get("team_id"),
                channel_id=message["channel_id"],
                thread_id=message["thread_id"],
            )
            self.streams.publish_to(user_id, event)
        self.delivered += len(found)
        return len(found)
