"""Where candidates come from (issue 12, point 3): an agent's memory save (the host's
`spacebot_before_memory_save`), and the event log's messages, structured interactions (poll
votes, form answers) and task transitions. Messages are also embedded here for semantic search.

The log is followed from a cursor kept in the database and advanced in the same transaction as
the candidates it produced, so a restart neither loses nor repeats one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..events import SYSTEM, Actor
from ..hookspecs import HostAPI, hookimpl
from ..identity.permissions import Access
from ..instance import Instance
from ..store import identity, vectors
from ..store import memory as store
from ..store import messages as message_store
from ..store.db import Database, WriteTx
from .admission import Admitted, Proposal, Refused, admit
from .embeddings import Embedder, EmbeddingsUnavailable
from .policy import allows, effective

log = logging.getLogger("spacechat.memory")

CURSOR = "memory_ingest_seq"
EVENT_TYPES = ("message.created", "message.completed", "message.updated", "interaction.submitted", "task.updated")
BATCH = 200
COALESCE_SECONDS = 0.05  # how long a wake-up waits for more events before a step
DUPLICATE_DISTANCE = 0.15  # cosine distance under which two candidates say the same thing


class Ingest:
    """Turns what agents and people do into candidates (or, under `auto`, memories), as the
    policy and each person's consent allow; registered with the host as a hook plugin."""

    def __init__(
        self, db: Database, access: Access, instance: Instance, host: HostAPI | None, embedder: Embedder | None
    ) -> None:
        self.db, self.access, self.instance, self.host, self.embedder = db, access, instance, host, embedder
        self.vectors_ready = False
        self.deliver: Any = None  # set by the review service: delivers an `auto` memory to its agent
        self._wake = asyncio.Event()
        self._levels: dict[tuple[str, str | None, str | None], list[dict[str, Any] | None]] = {}

    # -- the agent's memory_save ----------------------------------------------------------------

    @hookimpl
    async def spacebot_before_memory_save(
        self, agent_id: str, channel_id: str | None, memory: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Route an agent's save through policy and consent: into the queue (`review`), saved by
        us through the HostAPI (`auto`, so it carries our key), or refused."""
        proposal = await self._agent_proposal(agent_id, channel_id, memory)
        try:
            admitted = await self.admit(proposal, Actor("agent", agent_id))
        except Refused as refused:
            return {"action": "reject", "reason": str(refused)}
        if admitted.kind == "candidate":
            return {"action": "review", "candidate_id": admitted.record["id"]}
        host_id = await self.deliver(admitted.record) if self.deliver is not None else None
        return {"action": "saved", "memory_id": host_id or admitted.record["id"]}

    async def _agent_proposal(self, agent_id: str, channel_id: str | None, memory: Mapping[str, Any]) -> Proposal:
        channel = self.access.channels.get(channel_id or "")
        org_id = channel["org_id"] if channel else self.instance.org_id
        assert org_id is not None
        source_message, author = await self._last_person(memory.get("message_ids") or ())
        subjects = await self._named_people(org_id, str(memory.get("content", "")))
        if author and author not in subjects:
            subjects.insert(0, author)
        return Proposal(
            org_id=org_id,
            team_id=channel["team_id"] if channel else None,
            channel_id=channel["id"] if channel else None,
            thread_id=memory.get("thread_id") or (source_message or {}).get("thread_id"),
            agent_id=agent_id,
            source="agent",
            source_ref=str(memory.get("turn_id") or "") or None,
            source_message_id=(source_message or {}).get("id"),
            source_user_id=author,
            subject_ids=subjects,
            content=str(memory.get("content", ""))[:10_000],
            memory_type=str(memory.get("memory_type") or "fact"),
            importance=_importance(memory.get("importance")),
            metadata=await self._metadata(author, channel),
        )

    async def _last_person(self, message_ids: Sequence[str]) -> tuple[dict[str, Any] | None, str | None]:
        """The newest of the turn's messages written by a person, and that person."""
        for message_id in reversed(list(message_ids)):
            message = await message_store.get_message(self.db, str(message_id))
            if message is not None and message["author"]["kind"] == "user":
                return message, message["author"]["id"]
        return None, None

    async def _named_people(self, org_id: str, text: str) -> list[str]:
        """Members a text names (their full name or @name, whole words): its subjects."""
        lowered = text.lower()
        found = []
        for user in await identity.list_users(self.db, org_id):
            name = str(user.get("name") or "").lower()
            if user.get("kind") == "human" and name and re.search(rf"(?<!\w)@?{re.escape(name)}(?!\w)", lowered):
                found.append(str(user["id"]))
        return found

    async def _metadata(self, user_id: str | None, channel: Mapping[str, Any] | None) -> dict[str, Any]:
        """What is known about the person; the policy keeps only the kinds it permits."""
        user = await identity.get_user(self.db, user_id) if user_id else None
        return {
            "role": user["role"] if user else None,
            "team": channel["team_id"] if channel else None,
            "channel": channel["name"] if channel else None,
        }

    # -- admission, with near-duplicate grouping ------------------------------------------------

    async def embed(self, text: str) -> bytes | None:
        if self.embedder is None or not self.vectors_ready:
            return None
        try:
            return await self.embedder.embed_background(text)
        except EmbeddingsUnavailable:
            return None

    async def admit(self, proposal: Proposal, actor: Actor) -> Admitted:
        vector = await self.embed(proposal.content) if proposal.source != "message" else None
        group_id = await self._group_of(proposal, vector) if vector is not None else None
        return await self.db.write(lambda tx: admit(tx, proposal, actor, vector=vector, group_id=group_id))

    async def _group_of(self, proposal: Proposal, vector: bytes) -> str | None:
        """The group of a pending candidate that says nearly the same thing, if any."""
        near = await vectors.nearest(
            self.db,
            vector,
            org_id=proposal.org_id,
            kinds=["candidate"],
            channel_ids=self._org_channels(proposal.org_id),
            k=1,
        )
        if not near or near[0][2] > DUPLICATE_DISTANCE:
            return None
        other = await store.get_candidate(self.db, near[0][1])
        if other is None or other["status"] != "pending":
            return None
        group_id = other["group_id"] or other["id"]
        if other["group_id"] is None:
            await self.db.write(lambda tx: store.set_group(tx, other["id"], group_id))
        return str(group_id)

    def _org_channels(self, org_id: str) -> list[str]:
        return ["", *(cid for cid, c in self.access.channels.items() if c["org_id"] == org_id)]

    # -- following the log ------------------------------------------------------------------

    def notify(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        """First start on an existing database: candidates come from what happens from now on
        (history is not mined), but every message gets its vector (`catch_up`)."""
        if await store.cursor(self.db, CURSOR) == 0:
            last = await store.last_event_seq(self.db)
            await self.db.write(lambda tx: store.set_cursor(tx, CURSOR, last))

    async def run(self) -> None:
        await self.catch_up()
        while True:
            await self._wake.wait()
            # Let a burst gather: one step then reads and writes many events at once instead of
            # a write transaction (and its fsync) per message. The embedding itself dominates the
            # CPU (bench/README.md: ~5 ms a message); this only saves commits.
            await asyncio.sleep(COALESCE_SECONDS)
            self._wake.clear()
            try:
                # Only a full batch means a backlog to take at once. Anything less was the
                # log's tail: what came meanwhile set `_wake`, and waits for the next burst,
                # so a steady stream of messages costs a step (its reads and its commit) per
                # COALESCE_SECONDS, not one per few messages (bench/README.md, #16).
                while await self.step() == BATCH:
                    pass
            except Exception:
                log.exception("memory ingestion failed; it resumes at the next event")

    async def catch_up(self) -> None:
        """Embed messages that have no vector yet (a first start, or the model installed later)."""
        if not self.vectors_ready or self.embedder is None:
            return
        while rows := await vectors.unindexed_messages(self.db, 256):
            await self._index(rows)

    async def step(self) -> int:
        """One batch of the log after the cursor (at most BATCH events): how many there were."""
        after = await store.cursor(self.db, CURSOR)
        rows = await store.events_of_types(self.db, after, EVENT_TYPES, BATCH)
        if not rows:
            return 0
        changed: dict[str, None] = {}
        self._levels.clear()
        for row in rows:
            envelope = orjson.loads(row["body"])
            if row["event_type"].startswith("message."):
                changed[envelope["payload"]["message"]["id"]] = None
                await self._from_message(envelope)
            elif row["event_type"] == "interaction.submitted":
                await self._from_interaction(envelope)
            else:
                await self._from_task(envelope)
        last = int(rows[-1]["seq"])
        embedded = []
        if self.vectors_ready and self.embedder is not None:
            embedded = await self._embed_rows(await vectors.messages_by_ids(self.db, list(changed)))

        # The step's vectors and the cursor in one transaction: a crash before it repeats the
        # step (an upsert, so harmless), and a quiet write path pays one commit per burst.
        def write(tx: WriteTx) -> None:
            self._write_vectors(tx, embedded)
            store.set_cursor(tx, CURSOR, last)

        await self.db.write(write)
        return len(rows)

    async def _index(self, rows: Sequence[Any]) -> None:
        embedded = await self._embed_rows(rows)
        if embedded:
            await self.db.write(lambda tx: self._write_vectors(tx, embedded))

    async def _embed_rows(self, rows: Sequence[Any]) -> list[tuple[tuple[str, str, str, str], bytes]]:
        texts = [
            (row["id"], row["org_id"], row["channel_id"], row["text"])
            for row in rows
            if row["text"] and row["state"] == "completed"
        ]
        if not texts or self.embedder is None:
            return []
        return [(t, await self.embedder.embed_background(t[3])) for t in texts]

    @staticmethod
    def _write_vectors(tx: WriteTx, embedded: Sequence[tuple[tuple[str, str, str, str], bytes]]) -> None:
        for (message_id, org_id, channel_id, _), vector in embedded:
            vectors.upsert_message(tx, message_id=message_id, org_id=org_id, channel_id=channel_id, vector=vector)

    async def _takes(self, source: str, channel: Mapping[str, Any] | None, org_id: str) -> bool:
        """A read-only look at the policy before any work: most channels take no messages."""
        team_id, channel_id = (channel["team_id"], channel["id"]) if channel else (None, None)
        key = (org_id, team_id, channel_id)
        levels = self._levels.get(key)
        if levels is None:  # read once per step for a burst in one channel
            levels = self._levels[key] = await store.policy_levels(self.db, org_id, team_id, channel_id)
        policy, _ = effective(levels)
        return allows(policy, source)

    async def _propose(self, proposal: Proposal) -> None:
        try:
            admitted = await self.admit(proposal, SYSTEM)
        except Refused:
            return
        if admitted.kind == "memory" and self.deliver is not None:
            await self.deliver(admitted.record)

    async def _from_message(self, envelope: Mapping[str, Any]) -> None:
        message = envelope["payload"]["message"]
        author = message["author"]
        if (
            envelope["event_type"] != "message.created"
            or author["kind"] != "user"
            or message["state"] != "completed"
            or not message["text"].strip()
        ):
            return
        channel = self.access.channels.get(message["channel_id"])
        if not await self._takes("message", channel, message["org_id"]):
            return
        user = await identity.get_user(self.db, author["id"])
        thread = await message_store.get_thread(self.db, message["thread_id"])
        name = user["name"] if user else "someone"
        await self._propose(
            Proposal(
                org_id=message["org_id"],
                team_id=message["team_id"],
                channel_id=message["channel_id"],
                thread_id=message["thread_id"],
                agent_id=self._agent_for(channel),
                source="message",
                source_ref=message["id"],
                source_message_id=message["id"],
                source_user_id=author["id"],
                content=message["text"][:2000],
                memory_type="observation",
                importance=0.4,
                metadata=await self._metadata(author["id"], channel),
                summary_line=f"{name}: {' '.join(message['text'].split())[:300]}",
                thread_title=thread["title"] if thread else "",
            )
        )

    async def _from_interaction(self, envelope: Mapping[str, Any]) -> None:
        interaction = envelope["payload"]["interaction"]
        if interaction["kind"] not in ("poll", "form") or interaction["user"]["kind"] != "user":
            return
        message = await message_store.get_message(self.db, interaction["message_id"])
        if message is None or not await self._takes(
            "interaction", self.access.channels.get(message["channel_id"]), message["org_id"]
        ):
            return
        blocks: list[dict[str, Any]] = message["blocks"] or []
        block: dict[str, Any] = next((b for b in blocks if b.get("block_id") == interaction["block_id"]), {})
        if block.get("anonymous"):
            return  # an anonymous vote never becomes memory about the voter
        content, memory_type = _describe_interaction(interaction, block)
        channel = self.access.channels.get(message["channel_id"])
        who = interaction["user"]["id"]
        await self._propose(
            Proposal(
                org_id=message["org_id"],
                team_id=message["team_id"],
                channel_id=message["channel_id"],
                thread_id=message["thread_id"],
                agent_id=message["author"]["id"] if message["author"]["kind"] == "agent" else self._agent_for(channel),
                source="interaction",
                source_ref=interaction["id"],
                source_message_id=message["id"],
                source_user_id=who,
                content=content,
                memory_type=memory_type,
                metadata=await self._metadata(who, channel),
            )
        )

    async def _from_task(self, envelope: Mapping[str, Any]) -> None:
        payload = envelope["payload"]
        if payload.get("change") != "status":
            return
        task, actor = payload["task"], envelope["actor"]
        channel = self.access.channels.get(task["channel_id"] or "")
        if not await self._takes("task", channel, task["org_id"]):
            return
        source_user = actor["id"] if actor["kind"] == "user" else None
        assignee = (
            task["assignee_id"] if task["assignee_id"] and task["assignee_id"] != task["owner_agent_id"] else None
        )
        await self._propose(
            Proposal(
                org_id=task["org_id"],
                team_id=task["team_id"],
                channel_id=task["channel_id"],
                agent_id=task["owner_agent_id"] or self._agent_for(channel),
                source="task",
                source_ref=f"{task['id']}:{envelope['seq']}",
                source_user_id=source_user,
                subject_ids=[assignee] if assignee else [],
                content=(
                    f'Task #{task["number"]} "{task["title"]}" moved from {payload.get("previous_status")}'
                    f" to {task['status']}"
                ),
                memory_type="event",
                importance=0.5,
                metadata=await self._metadata(source_user, channel),
            )
        )

    def _agent_for(self, channel: Mapping[str, Any] | None) -> str | None:
        """The agent whose memory a candidate from this channel would join: the first bound to it."""
        if self.host is None or channel is None:
            return None
        for agent in self.host.agents():
            if channel["name"] in agent.get("channels", []):
                return str(agent["id"])
        return None


def _importance(value: Any) -> float:
    try:
        return min(max(float(value), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.6


def _describe_interaction(interaction: Mapping[str, Any], block: Mapping[str, Any]) -> tuple[str, str]:
    name = interaction["user"].get("name") or "someone"
    values = interaction["values"]
    if interaction["kind"] == "poll":
        question = block.get("question") or block.get("text") or "a poll"
        chosen = ", ".join(str(v) for v in values) if isinstance(values, list) else str(values)
        return f'{name} voted "{chosen}" in the poll "{question}"', "preference"
    title = block.get("title") or block.get("text") or "a form"
    answers = "; ".join(f"{k}: {v}" for k, v in (values or {}).items()) if isinstance(values, dict) else str(values)
    return f'{name} answered the form "{title}": {answers}', "fact"
