"""Retention (issue 12, point 6): deleting messages, their attachments and voice memos, candidates and memories
past the retention their policy sets, and taking their text out of the event log.

The purge runs in one transaction per run. Files are deleted by the caller after the commit
(`PurgeResult.attachments`), so a failed run deletes no file whose row survived.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .db import Database, WriteTx
from .shapes import plain_preview

CHUNK = 500

# Which events carry the text of which kind of row, and where the row's id sits in them.
SCRUB: dict[str, tuple[tuple[str, ...], str]] = {
    "message": (("message.created", "message.completed", "message.failed", "message.updated"), "$.payload.message.id"),
    "thread": (("thread.created",), "$.payload.thread.id"),
    "interaction": (("interaction.submitted",), "$.payload.interaction.message_id"),
    "memory": (("memory.saved",), "$.payload.memory.id"),
    "candidate": (("memory.candidate.created", "memory.rejected"), "$.payload.candidate.id"),
    "voice_memo": (("voice.memo.created", "voice.memo.transcribed", "voice.memo.failed"), "$.payload.memo.id"),
    "voice_clip": (("voice.memo.speech",), "$.payload.memo_id"),
}


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


def scrub_events(tx: WriteTx, kind: str, ids: Sequence[str]) -> int:
    """Replace the payload of every logged event that carries the text of these rows with
    `{"purged": true, "id": ...}`: the log keeps that something happened, not what was said."""
    types, path = SCRUB[kind]
    marks = ",".join("?" * len(types))
    scrubbed = 0
    for chunk in _chunks(ids):
        rows = tx.all(
            f"SELECT seq, body, json_extract(body, ?) AS ref FROM events WHERE event_type IN ({marks})"
            f" AND json_extract(body, ?) IN ({','.join('?' * len(chunk))})",
            (path, *types, path, *chunk),
        )
        for row in rows:
            envelope = orjson.loads(row["body"])
            envelope["payload"] = {"purged": True, "id": row["ref"]}
            tx.execute("UPDATE events SET body = ? WHERE seq = ?", (orjson.dumps(envelope), row["seq"]))
            scrubbed += 1
    return scrubbed


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=dict)
    attachments: list[str] = field(default_factory=list)
    memories: list[str] = field(default_factory=list)  # tombstoned now: their agents forget them
    voice_memos: list[str] = field(default_factory=list)  # their audio files go after the commit


def _due(tx: WriteTx, table: str, cutoffs: Mapping[str, str], column: str, extra: str = "") -> list[str]:
    ids: list[str] = []
    for key, cutoff in cutoffs.items():
        ids.extend(
            row[0]
            for row in tx.all(f"SELECT id FROM {table} WHERE {column} = ? AND created_at < ? {extra}", (key, cutoff))
        )
    return ids


def purge(
    tx: WriteTx, channel_cutoffs: Mapping[str, str], org_cutoffs: Mapping[str, str], *, dry_run: bool
) -> PurgeResult:
    """Everything older than its cutoff: messages (not still streaming) and what hangs on them
    by channel; candidates and memories by channel, or by organisation when they have none."""
    result = PurgeResult()
    messages = _due(tx, "messages", channel_cutoffs, "channel_id", "AND state NOT IN ('created', 'streaming')")
    candidates = _due(tx, "memory_candidates", channel_cutoffs, "channel_id")
    candidates += _due(tx, "memory_candidates", org_cutoffs, "org_id", "AND channel_id IS NULL")
    memories = _due(tx, "memories", channel_cutoffs, "channel_id", "AND status != 'deleted'")
    memories += _due(tx, "memories", org_cutoffs, "org_id", "AND channel_id IS NULL AND status != 'deleted'")
    attachments = _attachments_of(tx, messages)
    voice_memos = _voice_memos_of(tx, messages)
    result.counts = {
        "messages": len(messages),
        "attachments": len(attachments),
        "voice_memos": len(voice_memos),
        "candidates": len(candidates),
        "memories": len(memories),
    }
    if dry_run:
        return result
    result.attachments = attachments
    result.memories = memories
    result.voice_memos = voice_memos
    result.counts["vectors"] = _remove_vectors(tx, [*messages, *candidates, *memories])
    _delete_voice_memos(tx, voice_memos)
    result.counts["threads"] = _delete_messages(tx, messages)
    _delete_candidates(tx, candidates)
    _tombstone_memories(tx, memories)
    return result


def _attachments_of(tx: WriteTx, message_ids: Sequence[str]) -> list[str]:
    found: list[str] = []
    for chunk in _chunks(message_ids):
        found.extend(
            row[0]
            for row in tx.all(f"SELECT id FROM attachments WHERE message_id IN ({','.join('?' * len(chunk))})", chunk)
        )
    return found


def _voice_memos_of(tx: WriteTx, message_ids: Sequence[str]) -> list[str]:
    """The voice memos of these messages: a person's recording, or the speech of a reply."""
    found: list[str] = []
    for chunk in _chunks(message_ids):
        marks = ",".join("?" * len(chunk))
        found.extend(row[0] for row in tx.all(f"SELECT id FROM voice_memos WHERE message_id IN ({marks})", chunk))
    return found


def _delete_voice_memos(tx: WriteTx, ids: Sequence[str]) -> None:
    """A purged memo leaves no transcript: not in its row, its sentences or the log."""
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        tx.execute(f"DELETE FROM voice_clips WHERE memo_id IN ({marks})", chunk)
        tx.execute(f"DELETE FROM voice_memos WHERE id IN ({marks})", chunk)
    scrub_events(tx, "voice_memo", ids)
    scrub_events(tx, "voice_clip", ids)


def _remove_vectors(tx: WriteTx, ids: Sequence[str]) -> int:
    from . import vectors

    return vectors.remove(tx, ids) if vectors.table_exists(tx) else 0


# What hangs on a message or a thread and goes with it (a table with a foreign key to messages or
# threads that is not listed here makes the purge fail on its constraint: tests/test_retention.py).
MESSAGE_TABLES = (
    "attachments",
    "poll_votes",
    "interactions",
    "task_cards",
    "message_edits",
    "message_reactions",
    "message_mentions",
)
THREAD_TABLES = ("thread_follows", "thread_reads")


def _delete_messages(tx: WriteTx, ids: Sequence[str]) -> int:
    """Delete messages and what hangs on them; a thread left empty goes too, and a thread whose
    first message went keeps no title made of it. Returns how many threads were deleted."""
    threads: set[str] = set()
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        threads.update(
            row[0] for row in tx.all(f"SELECT DISTINCT thread_id FROM messages WHERE id IN ({marks})", chunk)
        )
        for table in MESSAGE_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE message_id IN ({marks})", chunk)
        tx.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
    scrub_events(tx, "message", ids)
    scrub_events(tx, "interaction", ids)
    emptied = []
    for thread_id in threads:
        if tx.one("SELECT 1 FROM messages WHERE thread_id = ? LIMIT 1", (thread_id,)) is None:
            emptied.append(thread_id)
        else:
            tx.execute(
                "UPDATE threads SET title = '' WHERE id = ? AND root_message_id NOT IN"
                " (SELECT id FROM messages WHERE thread_id = ?)",
                (thread_id, thread_id),
            )
            _resummarise(tx, thread_id)
    scrub_events(tx, "thread", sorted(threads))
    for chunk in _chunks(emptied):
        marks = ",".join("?" * len(chunk))
        for table in THREAD_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE thread_id IN ({marks})", chunk)
        tx.execute(f"DELETE FROM threads WHERE id IN ({marks})", chunk)
    return len(emptied)


def _resummarise(tx: WriteTx, thread_id: str) -> None:
    """A thread that keeps messages lists its last remaining one, never a purged one's text."""
    last = tx.one(
        "SELECT id, author_kind, author_id, text FROM messages WHERE thread_id = ? ORDER BY seq DESC LIMIT 1",
        (thread_id,),
    )
    if last is not None:
        tx.execute(
            "UPDATE threads SET last_message_id = ?, last_author_kind = ?, last_author_id = ?, last_preview = ?"
            " WHERE id = ? AND last_message_id IS NOT ?",
            (last[0], last[1], last[2], plain_preview(last[3] or ""), thread_id, last[0]),
        )


def _delete_candidates(tx: WriteTx, ids: Sequence[str]) -> None:
    for chunk in _chunks(ids):
        tx.execute(f"DELETE FROM memory_candidates WHERE id IN ({','.join('?' * len(chunk))})", chunk)
    scrub_events(tx, "candidate", ids)


def _tombstone_memories(tx: WriteTx, ids: Sequence[str]) -> None:
    """A purged memory keeps only its tombstone: no text in the row, its revisions or the log."""
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        tx.execute(f"DELETE FROM memory_revisions WHERE memory_id IN ({marks})", chunk)
        tx.execute(
            "UPDATE memories SET status = 'deleted', content = '', metadata = '{}', revision = revision + 1,"
            " deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), deleted_by = 'retention',"
            " delivery = CASE WHEN host_memory_id IS NULL THEN 'none' ELSE 'pending' END"
            f" WHERE id IN ({marks})",
            chunk,
        )
    scrub_events(tx, "memory", ids)


async def channels_with_orgs(db: Database) -> list[Any]:
    return await db.fetchall("SELECT id, org_id, team_id FROM channels")


async def org_ids(db: Database) -> list[str]:
    return [row[0] for row in await db.fetchall("SELECT id FROM orgs")]
