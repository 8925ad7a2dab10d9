"""Agent replies as streaming messages.

A turn's reply is a message that starts in state `created` when the turn starts, receives text
deltas (fanned out live as `message.stream.delta`, never written per delta), is checkpointed at
least every `realtime.checkpoint_ms` so a reconnecting client or a restarted process sees the
text so far, and ends as `message.completed` or `message.failed`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cards.service import agent_card, initial_state
from ..events import SYSTEM, Actor, AgentStatusChanged, Event, MessageStreamDelta, now_rfc3339
from ..hookspecs import hookimpl
from ..identity.permissions import Access
from ..store import identity
from ..store import messages as message_store
from ..store import usage as usage_store
from ..store.db import Database, WriteTx

log = logging.getLogger("spacechat.replies")


@dataclass
class ReplyStream:
    agent_id: str
    message_id: str
    org_id: str
    team_id: str
    channel_id: str
    thread_id: str
    text: str = ""
    saved: str = ""
    reasoning_chars: int = 0
    message_ids: list[str] = field(default_factory=list)


async def turn_input(db: Database, reply: Mapping[str, Any]) -> dict[str, Any]:
    """The stored input of the turn behind an agent's reply, for a host that lost the turn (a
    restart): `{agent_id, messages: [{id, text, author}]}`."""
    messages = []
    for message_id in (reply.get("metadata") or {}).get("in_reply_to") or []:
        found = await message_store.get_message(db, message_id)
        if found is not None:
            user = await identity.get_user(db, found["author"]["id"] or "")
            messages.append(
                {"id": found["id"], "text": found["text"], "author": user["name"] if user else found["author"]["id"]}
            )
    return {"agent_id": reply["author"]["id"], "messages": messages}


class ReplyStreams:
    def __init__(self, db: Database, access: Access, publish_live: Callable[[Event], None], checkpoint_ms: int) -> None:
        self.db, self.access, self.publish_live, self.checkpoint_ms = db, access, publish_live, checkpoint_ms
        self.by_turn: dict[str, ReplyStream] = {}

    def envelope(self, stream: ReplyStream) -> dict[str, Any]:
        return {
            "actor": Actor("agent", stream.agent_id),
            "org_id": stream.org_id,
            "team_id": stream.team_id,
            "channel_id": stream.channel_id,
            "thread_id": stream.thread_id,
        }

    # -- the hooks this service implements (registered as a plugin by the composition root) --

    @hookimpl
    async def spacebot_turn_started(
        self,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        turn_id: str,
        model: str,
        provider: str,
        message_ids: Sequence[str],
    ) -> None:
        await self.started(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            turn_id=turn_id,
            model=model,
            provider=provider,
            message_ids=message_ids,
        )

    @hookimpl
    async def spacebot_text_delta(self, turn_id: str, delta: str, aggregated_text: str) -> None:
        await self.delta(turn_id=turn_id, delta=delta, aggregated_text=aggregated_text)

    @hookimpl
    async def spacebot_reasoning_delta(self, turn_id: str, delta: str) -> None:
        await self.delta(turn_id=turn_id, delta=delta, aggregated_text="", kind="reasoning")

    @hookimpl
    async def spacebot_turn_completed(
        self, turn_id: str, text: str, blocks: Sequence[Mapping[str, Any]] | None, ttft_ms: int | None, duration_ms: int
    ) -> None:
        await self.completed(
            turn_id=turn_id, text=text, blocks=blocks, metadata={"ttft_ms": ttft_ms, "duration_ms": duration_ms}
        )

    @hookimpl
    async def spacebot_turn_failed(self, turn_id: str, error: str, retryable: bool, duration_ms: int) -> None:
        await self.failed(turn_id=turn_id, error=error, retryable=retryable, duration_ms=duration_ms)

    @hookimpl
    async def spacebot_outbound_message(
        self,
        agent_id: str,
        channel_id: str,
        thread_id: str | None,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None,
    ) -> str | None:
        return await self.outbound(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, text=text, blocks=blocks
        )

    @hookimpl
    async def spacebot_inbound_message(
        self,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        message_id: str | None,
        sender: Mapping[str, Any],
        text: str,
    ) -> None:
        """A message that reached the agent without passing through Spacechat (Spacebot's own
        system messages, a message typed into the conversation in Spacebot's UI) joins the
        thread, so the thread shows what the agent saw. Spacechat's own messages are there."""
        if message_id is not None or not text:
            return
        channel = self.access.channels.get(channel_id)
        if channel is None:
            return
        metadata = {"external_sender": {"kind": sender.get("kind"), "name": sender.get("name")}, "to_agent": agent_id}
        await self.db.write(
            lambda tx: message_store.post_message(
                tx, actor=SYSTEM, channel=channel, thread_id=thread_id, text=text, metadata=metadata
            )
        )

    # -- reply streams --------------------------------------------------------------------------

    async def started(
        self,
        *,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        turn_id: str,
        model: str,
        message_ids: Sequence[str],
        provider: str = "",
    ) -> str | None:
        channel = self.access.channels.get(channel_id)
        if channel is None:
            log.warning("turn %s started in unknown channel %s", turn_id, channel_id)
            return None
        actor = Actor("agent", agent_id)

        def create(tx: WriteTx) -> str:
            result = message_store.post_message(
                tx,
                actor=actor,
                channel=channel,
                thread_id=thread_id,
                text="",
                state="created",
                metadata={"turn_id": turn_id, "model": model, "provider": provider, "in_reply_to": list(message_ids)},
            )
            usage_store.turn_started(
                tx,
                {
                    "turn_id": turn_id,
                    "org_id": channel["org_id"],
                    "agent_id": agent_id,
                    "channel_id": channel_id,
                    "thread_id": thread_id,
                    "message_id": result.message["id"],
                    "model": model,
                    "provider": provider,
                    "started_at": now_rfc3339(),
                },
            )
            tx.emit(
                Event(
                    AgentStatusChanged(agent_id=agent_id, status="thinking", detail=turn_id),
                    actor=actor,
                    org_id=channel["org_id"],
                    team_id=channel["team_id"],
                    channel_id=channel_id,
                    thread_id=thread_id,
                )
            )
            return str(result.message["id"])

        message_id = await self.db.write(create)
        self.by_turn[turn_id] = ReplyStream(
            agent_id,
            message_id,
            channel["org_id"],
            channel["team_id"],
            channel_id,
            thread_id,
            message_ids=list(message_ids),
        )
        return message_id

    async def delta(self, *, turn_id: str, delta: str, aggregated_text: str, kind: str = "text") -> None:
        stream = self.by_turn.get(turn_id)
        if stream is None or not delta:
            return
        if kind == "reasoning":
            offset = stream.reasoning_chars
            stream.reasoning_chars += len(delta)
        else:
            offset = len(aggregated_text) - len(delta)
            stream.text = aggregated_text
        payload = MessageStreamDelta(message_id=stream.message_id, offset=offset, text=delta, kind=kind)  # type: ignore[arg-type]
        self.publish_live(Event(payload, **self.envelope(stream)))

    async def checkpoint_loop(self) -> None:
        interval = self.checkpoint_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception:
                log.exception("checkpointing streaming replies failed")

    async def flush(self) -> None:
        """Write the text so far of every stream that changed since its last checkpoint."""
        dirty = {s.message_id: s.text for s in self.by_turn.values() if s.text != s.saved}
        if not dirty:
            return
        await self.db.write(lambda tx: message_store.checkpoint_streams(tx, dirty))
        for stream in self.by_turn.values():
            if stream.message_id in dirty:
                stream.saved = dirty[stream.message_id]

    async def completed(
        self, *, turn_id: str, text: str, blocks: Sequence[Mapping[str, Any]] | None, metadata: dict[str, Any]
    ) -> dict[str, Any] | None:
        stream = self.by_turn.pop(turn_id, None)
        if stream is None:
            return None
        envelope = self.envelope(stream)

        card = agent_card(blocks)

        def finish(tx: WriteTx) -> dict[str, Any] | None:
            message = message_store.complete_message(
                tx, stream.message_id, text, blocks=card, card_state=initial_state(card), metadata=metadata
            )
            tx.emit(Event(AgentStatusChanged(agent_id=stream.agent_id, status="idle"), **envelope))
            usage_store.turn_ended(
                tx,
                turn_id,
                outcome="completed",
                ttft_ms=metadata.get("ttft_ms"),
                duration_ms=int(metadata.get("duration_ms") or 0),
                error=None,
                at=now_rfc3339(),
            )
            return message

        return await self.db.write(finish)

    async def failed(self, *, turn_id: str, error: str, retryable: bool, duration_ms: int = 0) -> dict[str, Any] | None:
        stream = self.by_turn.pop(turn_id, None)
        if stream is None:
            return None
        envelope = self.envelope(stream)

        def fail(tx: WriteTx) -> dict[str, Any] | None:
            message = message_store.fail_message(tx, stream.message_id, reason="error", error=error, text=stream.text)
            tx.emit(Event(AgentStatusChanged(agent_id=stream.agent_id, status="error", detail=error), **envelope))
            at = now_rfc3339()
            usage_store.turn_ended(
                tx, turn_id, outcome="failed", ttft_ms=None, duration_ms=duration_ms, error=error, at=at
            )
            usage_store.error(
                tx,
                org_id=stream.org_id,
                source="turn",
                message=error,
                agent_id=stream.agent_id,
                channel_id=stream.channel_id,
                thread_id=stream.thread_id,
                at=at,
            )
            return message

        return await self.db.write(fail)

    def message_for_turn(self, turn_id: str) -> str | None:
        stream = self.by_turn.get(turn_id)
        return None if stream is None else stream.message_id

    async def outbound(
        self,
        *,
        agent_id: str,
        channel_id: str,
        thread_id: str | None,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None,
    ) -> str | None:
        """A whole message from an agent (a notice, a card), outside a streamed reply."""
        channel = self.access.channels.get(channel_id)
        if channel is None:
            log.warning("agent %s posted to unknown channel %s", agent_id, channel_id)
            return None
        actor = Actor("agent", agent_id)
        card = agent_card(blocks)
        result = await self.db.write(
            lambda tx: message_store.post_message(
                tx,
                actor=actor,
                channel=channel,
                thread_id=thread_id,
                text=text,
                blocks=card,
                card_state=initial_state(card),
            )
        )
        return str(result.message["id"])
