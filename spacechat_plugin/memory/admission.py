"""Whether something may become memory, and what it becomes: the one place where policy and
consent decide (issue 12, points 1-3).

`admit` runs inside the writer's transaction, so the policy and the consents it reads are the
ones in force when the candidate (or, under `auto`, the memory) is written: a person who opts out
at the same moment is either withdrawn with their pending candidates or never enters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events import Actor
from ..store import memories as memory_store
from ..store import memory as store
from ..store import vectors
from ..store.db import WriteTx
from .policy import MEMORY_TYPES, allows, effective, kept_metadata

SUMMARY_CHARS = 2000


class Refused(Exception):
    """Policy or consent keeps this out of memory; the message says why (never who)."""


@dataclass
class Proposal:
    """Something that could become memory, before policy and consent have spoken."""

    org_id: str
    source: str  # agent | message | interaction | task
    content: str
    memory_type: str = "fact"
    importance: float = 0.6
    team_id: str | None = None
    channel_id: str | None = None
    thread_id: str | None = None
    agent_id: str | None = None
    source_ref: str | None = None
    source_message_id: str | None = None
    source_user_id: str | None = None
    subject_ids: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # For a thread summary: how this message reads in it ("Ann: text").
    summary_line: str | None = None
    thread_title: str = ""

    @property
    def people(self) -> set[str]:
        return {p for p in [self.source_user_id, *self.subject_ids] if p}

    @property
    def subject_id(self) -> str | None:
        return self.subject_ids[0] if self.subject_ids else self.source_user_id


@dataclass
class Admitted:
    """What admission made: a candidate waiting for review, or (under `auto`) a memory."""

    kind: str  # candidate | memory
    record: dict[str, Any]
    created: bool = True


def policy_for(tx: WriteTx, proposal: Proposal) -> dict[str, Any]:
    policy, _ = effective(store.policy_levels_tx(tx, proposal.org_id, proposal.team_id, proposal.channel_id))
    return policy


def check(tx: WriteTx, proposal: Proposal) -> dict[str, Any]:
    """The policy in force, or Refused: ingestion off, a source the policy does not take, or
    someone in it (the source or a subject) who opted out."""
    policy = policy_for(tx, proposal)
    if policy["ingestion"] == "off":
        raise Refused("memory is turned off here by policy")
    if not allows(policy, proposal.source):
        raise Refused(f"the memory policy here does not take {proposal.source} as a source")
    consents = store.consents_tx(tx, proposal.people)
    if any(consents.get(person, policy["consent_default"]) == "out" for person in proposal.people):
        raise Refused("someone in this conversation has opted out of memory")
    return policy


def _fields(proposal: Proposal, policy: Mapping[str, Any]) -> dict[str, Any]:
    memory_type = proposal.memory_type if proposal.memory_type in MEMORY_TYPES else "fact"
    return {
        "org_id": proposal.org_id,
        "team_id": proposal.team_id,
        "channel_id": proposal.channel_id,
        "agent_id": proposal.agent_id,
        "subject_id": proposal.subject_id,
        "source_user_id": proposal.source_user_id,
        "content": proposal.content,
        "memory_type": memory_type,
        "importance": min(max(float(proposal.importance), 0.0), 1.0),
        "metadata": kept_metadata(policy, proposal.metadata),
    }


def admit(
    tx: WriteTx, proposal: Proposal, actor: Actor, *, vector: bytes | None = None, group_id: str | None = None
) -> Admitted:
    """Write what the policy makes of `proposal` (Refused when it makes nothing)."""
    policy = check(tx, proposal)
    if proposal.source == "message" and policy["granularity"] == "thread":
        return _thread_summary(tx, proposal, policy, actor)
    fields = _fields(proposal, policy)
    if policy["ingestion"] == "auto":
        memory = memory_store.create(
            tx, {**fields, "source": proposal.source, "source_ref": proposal.source_ref}, actor
        )
        if vector is not None:
            vectors.upsert(
                tx,
                kind="memory",
                ref_id=memory["id"],
                org_id=proposal.org_id,
                channel_id=proposal.channel_id,
                vector=vector,
            )
        return Admitted("memory", memory)
    candidate = store.create_candidate(
        tx,
        {
            **fields,
            "thread_id": proposal.thread_id,
            "source": proposal.source,
            "source_ref": proposal.source_ref,
            "source_message_id": proposal.source_message_id,
            "group_id": group_id,
        },
        actor,
    )
    if vector is not None:
        vectors.upsert(
            tx,
            kind="candidate",
            ref_id=candidate["id"],
            org_id=proposal.org_id,
            channel_id=proposal.channel_id,
            vector=vector,
        )
    return Admitted("candidate", candidate)


def _summary(title: str, lines: list[str]) -> str:
    text = f'Thread "{title}": ' + " / ".join(lines)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _thread_summary(tx: WriteTx, proposal: Proposal, policy: Mapping[str, Any], actor: Actor) -> Admitted:
    """Granularity `thread`: one summary per thread (extractive: who said what, in order), kept
    current while it waits for review, or, under `auto`, revised as the thread grows."""
    assert proposal.thread_id is not None
    line = proposal.summary_line or proposal.content
    if policy["ingestion"] == "auto":
        existing = memory_store.by_source_tx(tx, "message", proposal.thread_id)
        if existing is not None:
            content = _summary(proposal.thread_title, [*_lines(existing["content"]), line])
            return Admitted("memory", memory_store.change(tx, existing["id"], "edited", actor, content=content), False)
        fields = {**_fields(proposal, policy), "content": _summary(proposal.thread_title, [line])}
        fields["memory_type"] = "event"
        memory = memory_store.create(tx, {**fields, "source": "message", "source_ref": proposal.thread_id}, actor)
        return Admitted("memory", memory)
    pending = store.pending_for_ref(tx, "message", proposal.thread_id)
    if pending is not None:
        store.update_pending_content(
            tx, pending["id"], _summary(proposal.thread_title, [*_lines(pending["content"]), line])
        )
        updated = store.candidate_tx(tx, pending["id"])
        assert updated is not None
        return Admitted("candidate", updated, created=False)
    fields = {**_fields(proposal, policy), "content": _summary(proposal.thread_title, [line]), "memory_type": "event"}
    candidate = store.create_candidate(
        tx,
        {
            **fields,
            "thread_id": proposal.thread_id,
            "source": "message",
            "source_ref": proposal.thread_id,
            "source_message_id": proposal.source_message_id,
        },
        actor,
    )
    return Admitted("candidate", candidate)


def _lines(summary: str) -> list[str]:
    body = summary.split('": ', 1)[1] if '": ' in summary else summary
    return [part for part in body.rstrip("…").split(" / ") if part]
