"""The review queue's decisions and the life of a memory (issue 12, points 2-4).

A reviewer approves a candidate (optionally edited: the diff is kept), rejects it with a reason,
or merges it into an existing memory; an approval may supersede older memories, which become
invalid, not deleted. A memory can be edited, rolled back to any revision, and deleted (a
tombstone). Every decision is one transaction with its event and audit row; a decided candidate
answers 409 and changes nothing.

What an agent remembers follows through the HostAPI: `save_memory` with the memory's id as its
key (a host that sees the key again replaces, never duplicates: exactly once per revision, even
when a delivery is retried), `forget_memory` for an invalid or deleted one.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Sequence
from typing import Any

from ..errors import BadRequest, Conflict, NotFound
from ..events import Actor, now_rfc3339
from ..hookspecs import HostAPI
from ..store import audit, vectors
from ..store import memories as memory_store
from ..store import memory as store
from ..store import retention as retention_store
from ..store.db import Database, WriteTx
from .ingest import Ingest

log = logging.getLogger("spacechat.memory")


def content_diff(before: str, after: str) -> list[str]:
    """A unified diff of two texts, line by line (what an edit changed)."""
    return list(difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm=""))


def clean(content: str | None) -> str | None:
    """Edited content, or None when not edited; an edit that empties it is refused."""
    if content is None:
        return None
    text = content.strip()
    if not text:
        raise BadRequest(
            "a memory cannot be empty", code="empty_content", details=[{"path": "content", "message": "empty"}]
        )
    return text


class Review:
    def __init__(self, db: Database, host: HostAPI | None, ingest: Ingest) -> None:
        self.db, self.host, self.ingest = db, host, ingest
        self._locks: dict[str, asyncio.Lock] = {}
        ingest.deliver = self.deliver

    # -- decisions ----------------------------------------------------------------------------

    @staticmethod
    def _pending(tx: WriteTx, candidate_id: str, org_id: str) -> dict[str, Any]:
        candidate = store.candidate_tx(tx, candidate_id)
        if candidate is None or candidate["org_id"] != org_id:
            raise NotFound("no such candidate")
        if candidate["status"] != "pending":
            raise Conflict(
                f"this candidate was already decided ({candidate['status']})",
                code="already_decided",
                details={"status": candidate["status"]},
            )
        return candidate

    async def approve(
        self,
        candidate_id: str,
        actor: Actor,
        org_id: str,
        *,
        ip: str | None,
        content: str | None,
        supersedes: Sequence[str] = (),
    ) -> dict[str, Any]:
        edited = clean(content)
        vector = await self.ingest.embed(edited) if edited is not None else None
        invalidated: list[dict[str, Any]] = []

        def write(tx: WriteTx) -> dict[str, Any]:
            candidate = self._pending(tx, candidate_id, org_id)
            final = edited if edited is not None else candidate["content"]
            diff = content_diff(candidate["content"], final) if final != candidate["content"] else None
            fields = {k: candidate[k] for k in ("org_id", "team_id", "channel_id", "agent_id", "subject_id")}
            fields.update(
                source_user_id=candidate["source_user_id"],
                content=final,
                memory_type=candidate["memory_type"],
                importance=candidate["importance"],
                metadata=candidate["metadata"],
                source=candidate["source"],
                source_ref=candidate["source_ref"],
            )
            memory = memory_store.create(tx, fields, actor, candidate_id=candidate_id)
            invalidated.extend(self._supersede(tx, supersedes, memory, actor))
            store.decide(
                tx,
                candidate_id,
                status="approved",
                actor=actor,
                content=final,
                original=candidate["content"] if diff else None,
                diff=diff,
                memory_id=memory["id"],
            )
            self._move_vector(tx, candidate, memory, vector)
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.candidate.approve",
                target_type="memory_candidate",
                target_id=candidate_id,
                ip=ip,
                details={"memory_id": memory["id"], "edited": diff is not None, "supersedes": list(supersedes)},
            )
            return memory

        memory = await self.db.write(write)
        for record in [memory, *invalidated]:
            await self.deliver(record)
        return await self._fresh(memory)

    @staticmethod
    def _supersede(tx: WriteTx, ids: Sequence[str], newer: dict[str, Any], actor: Actor) -> list[dict[str, Any]]:
        done = []
        for memory_id in ids:
            older = memory_store.memory_tx(tx, memory_id)
            if older is None or older["org_id"] != newer["org_id"] or older["status"] != "valid":
                raise BadRequest(
                    f"memory {memory_id} is not a valid memory to supersede",
                    code="cannot_supersede",
                    details=[{"path": "supersedes", "message": memory_id}],
                )
            done.append(
                memory_store.change(
                    tx,
                    memory_id,
                    "invalidated",
                    actor,
                    status="invalid",
                    valid_until=now_rfc3339(),
                    superseded_by=newer["id"],
                    note=newer["id"],
                )
            )
            vectors.remove(tx, [memory_id])
        return done

    @staticmethod
    def _move_vector(tx: WriteTx, candidate: dict[str, Any], memory: dict[str, Any], vector: bytes | None) -> None:
        """The candidate's vector becomes the memory's (re-embedded when the text was edited)."""
        if vector is None:
            vector = vectors.vector_of(tx, candidate["id"])
        vectors.remove(tx, [candidate["id"]])
        if vector is not None:
            vectors.upsert(
                tx,
                kind="memory",
                ref_id=memory["id"],
                org_id=memory["org_id"],
                channel_id=memory["channel_id"],
                vector=vector,
            )

    async def reject(
        self, candidate_id: str, actor: Actor, org_id: str, *, ip: str | None, reason: str
    ) -> dict[str, Any]:
        if not reason.strip():
            raise BadRequest(
                "say why it is rejected", code="reason_required", details=[{"path": "reason", "message": "empty"}]
            )

        def write(tx: WriteTx) -> dict[str, Any]:
            self._pending(tx, candidate_id, org_id)
            candidate = store.decide(tx, candidate_id, status="rejected", actor=actor, reason=reason.strip())
            vectors.remove(tx, [candidate_id])
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.candidate.reject",
                target_type="memory_candidate",
                target_id=candidate_id,
                ip=ip,
            )
            return candidate

        return await self.db.write(write)

    async def merge(
        self, candidate_id: str, actor: Actor, org_id: str, *, ip: str | None, memory_id: str, content: str | None
    ) -> dict[str, Any]:
        edited = clean(content)

        def write(tx: WriteTx) -> dict[str, Any]:
            candidate = self._pending(tx, candidate_id, org_id)
            target = memory_store.memory_tx(tx, memory_id)
            if target is None or target["org_id"] != org_id or target["status"] != "valid":
                raise BadRequest(
                    "merge into a valid memory of this organisation",
                    code="cannot_merge",
                    details=[{"path": "memory_id", "message": "not a valid memory"}],
                )
            merged = edited if edited is not None else f"{target['content']} {candidate['content']}"
            memory = memory_store.change(
                tx,
                memory_id,
                "merged",
                actor,
                content=merged,
                diff=content_diff(target["content"], merged),
                note=candidate_id,
                candidate_id=candidate_id,
            )
            store.decide(tx, candidate_id, status="merged", actor=actor, memory_id=memory_id)
            vectors.remove(tx, [candidate_id])
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.candidate.merge",
                target_type="memory_candidate",
                target_id=candidate_id,
                ip=ip,
                details={"memory_id": memory_id},
            )
            return memory

        memory = await self.db.write(write)
        await self._reembed(memory)
        await self.deliver(memory)
        return await self._fresh(memory)

    # -- a memory's life ----------------------------------------------------------------------

    @staticmethod
    def _memory(tx: WriteTx, memory_id: str, org_id: str) -> dict[str, Any]:
        memory = memory_store.memory_tx(tx, memory_id)
        if memory is None or memory["org_id"] != org_id:
            raise NotFound("no such memory")
        if memory["status"] == "deleted":
            raise Conflict("this memory was deleted", code="memory_deleted")
        return memory

    async def edit(
        self, memory_id: str, actor: Actor, org_id: str, *, ip: str | None, changes: dict[str, Any]
    ) -> dict[str, Any]:
        if "content" in changes:
            changes["content"] = clean(changes["content"])

        def write(tx: WriteTx) -> dict[str, Any]:
            memory = self._memory(tx, memory_id, org_id)
            diff = content_diff(memory["content"], changes["content"]) if "content" in changes else None
            updated = memory_store.change(tx, memory_id, "edited", actor, diff=diff, **changes)
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.edit",
                target_type="memory",
                target_id=memory_id,
                ip=ip,
                details={"fields": sorted(changes), "revision": updated["revision"]},
            )
            return updated

        memory = await self.db.write(write)
        await self._reembed(memory)
        await self.deliver(memory)
        return await self._fresh(memory)

    async def rollback(
        self, memory_id: str, actor: Actor, org_id: str, *, ip: str | None, revision: int
    ) -> dict[str, Any]:
        def write(tx: WriteTx) -> dict[str, Any]:
            memory = self._memory(tx, memory_id, org_id)
            old = memory_store.revision_tx(tx, memory_id, revision)
            if old is None or revision >= memory["revision"]:
                raise BadRequest(
                    f"revision {revision} is not an earlier revision of this memory",
                    code="unknown_revision",
                    details=[{"path": "revision", "message": "unknown"}],
                )
            restore: dict[str, Any] = {
                "content": old["content"],
                "memory_type": old["memory_type"],
                "importance": old["importance"],
                "status": old["status"],
            }
            if old["status"] == "valid":
                restore.update(valid_until=None, superseded_by=None)
            updated = memory_store.change(
                tx,
                memory_id,
                "rolled_back",
                actor,
                diff=content_diff(memory["content"], old["content"]),
                note=f"to revision {revision}",
                **restore,
            )
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.rollback",
                target_type="memory",
                target_id=memory_id,
                ip=ip,
                details={"to_revision": revision, "revision": updated["revision"]},
            )
            return updated

        memory = await self.db.write(write)
        await self._reembed(memory)
        await self.deliver(memory)
        return await self._fresh(memory)

    async def delete(self, memory_id: str, actor: Actor, org_id: str, *, ip: str | None, by_person: bool) -> None:
        def write(tx: WriteTx) -> dict[str, Any]:
            self._memory(tx, memory_id, org_id)
            memory = memory_store.tombstone(tx, memory_id, actor)
            vectors.remove(tx, [memory_id])
            retention_store.scrub_events(tx, "memory", [memory_id])
            retention_store.scrub_events(tx, "candidate", store.forget_candidates_of(tx, memory_id))
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.delete",
                target_type="memory",
                target_id=memory_id,
                ip=ip,
                details={"asked_by_person": by_person},
            )
            return memory

        memory = await self.db.write(write)
        await self.deliver(memory)

    async def set_consent(self, user_id: str, org_id: str, consent: str, *, ip: str | None) -> list[str]:
        """Record a person's choice; opting out withdraws their pending candidates."""
        actor = Actor("user", user_id)

        def write(tx: WriteTx) -> list[str]:
            previous = store.set_consent(tx, user_id, org_id, consent)
            withdrawn = store.withdraw_for_person(tx, user_id, actor) if consent == "out" else []
            vectors.remove(tx, withdrawn)
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="memory.consent",
                target_type="user",
                target_id=user_id,
                ip=ip,
                details={"consent": consent, "previous": previous, "withdrawn": len(withdrawn)},
            )
            return withdrawn

        return await self.db.write(write)

    async def _fresh(self, memory: dict[str, Any]) -> dict[str, Any]:
        """The record as it stands after delivery (its delivery state and host id)."""
        return await memory_store.get(self.db, memory["id"]) or memory

    async def _reembed(self, memory: dict[str, Any]) -> None:
        vector = await self.ingest.embed(memory["content"]) if memory["status"] == "valid" else None

        def write(tx: WriteTx) -> None:
            if memory["status"] != "valid":
                vectors.remove(tx, [memory["id"]])
            elif vector is not None:
                vectors.upsert(
                    tx,
                    kind="memory",
                    ref_id=memory["id"],
                    org_id=memory["org_id"],
                    channel_id=memory["channel_id"],
                    vector=vector,
                )

        await self.db.write(write)

    # -- what the agent holds -----------------------------------------------------------------

    async def deliver(self, memory: dict[str, Any]) -> str | None:
        """Bring the agent's own memory in line with this record, once per revision: save it
        (valid) or forget it (invalid, deleted). Failures are kept on the record for a retry."""
        if memory.get("agent_id") is None or self.host is None:
            return None
        lock = self._locks.setdefault(memory["id"], asyncio.Lock())
        async with lock:
            current = await memory_store.get(self.db, memory["id"])
            if current is None or current["delivery"] == "delivered":
                return None if current is None else current["host_memory_id"]
            try:
                host_id = await self._send(current)
            except Exception as exc:  # the host's own failure, kept on the record for a retry
                log.warning("memory %s: the host did not take it: %s", current["id"], exc)
                error = str(exc) or type(exc).__name__
                await self.db.write(
                    lambda tx: memory_store.delivery_failed(tx, current["id"], current["revision"], error)
                )
                return None
            await self.db.write(lambda tx: memory_store.delivered(tx, current["id"], current["revision"], host_id))
            self._locks.pop(memory["id"], None)
            return host_id

    async def _send(self, memory: dict[str, Any]) -> str | None:
        assert self.host is not None
        if memory["status"] == "valid":
            return await self.host.save_memory(
                agent_id=memory["agent_id"],
                memory={
                    "key": memory["id"],
                    "revision": memory["revision"],
                    "content": memory["content"],
                    "memory_type": memory["memory_type"],
                    "importance": memory["importance"],
                    "source": f"spacechat:{memory['source'] or 'review'}",
                    "channel_id": memory["channel_id"],
                },
            )
        if memory["delivered_revision"]:
            await self.host.forget_memory(agent_id=memory["agent_id"], key=memory["id"])
        return None

    async def deliver_pending(self) -> int:
        """Retry what the host has not taken yet (at start-up and with the daily job)."""
        done = 0
        for memory in await memory_store.undelivered(self.db):
            if await self.deliver(memory) is not None or memory["status"] != "valid":
                done += 1
        return done
