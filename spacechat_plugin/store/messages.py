"""Threads, messages, idempotency keys and attachments: SQL and the JSON shapes the API returns.

Every write here runs inside the writer's transaction and emits its events there, so the log and
these rows never disagree.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ..errors import Conflict, NotFound, Unprocessable
from ..events import (
    Actor,
    Event,
    MessageCompleted,
    MessageCreated,
    MessageFailed,
    MessageUpdated,
    ThreadCreated,
    new_id,
    now_rfc3339,
)
from . import chat
from .db import Database, WriteTx, dumps, loads
from .shapes import TITLE_CHARS, attachment_json, message_json, plain_preview, thread_json, title_of

IDEMPOTENCY_WINDOW = timedelta(hours=24)
# A key marked in progress this long ago was left by a gateway that died mid-send (sooner when
# the mark names a process of this machine that is gone: `_claimant_gone`).
CLAIM_ABANDONED_SECONDS = 60
OPEN_STATES = ("created", "streaming")


# --- idempotency ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IdempotencyClaim:
    """A send's idempotency key with the fingerprint of what it asked for."""

    actor_id: str
    key: str
    fingerprint: str


def fingerprint(target: str, body: Any) -> str:
    return hashlib.sha256(target.encode() + b"\0" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def replay_claim(tx: WriteTx, claim: IdempotencyClaim) -> tuple[int, Any] | None:
    """The stored answer for a key used within the window, or None; a key reused for a
    different request is refused (Stripe answers 422 to that; so do we)."""
    row = tx.one(
        "SELECT fingerprint, status, result, created_at FROM idempotency_keys WHERE actor_id = ? AND key = ?",
        (claim.actor_id, claim.key),
    )
    if row is None or row["status"] == 0:  # none, or this send's own mark (reserve_claim)
        return None
    cutoff = (datetime.now(UTC) - IDEMPOTENCY_WINDOW).strftime("%Y-%m-%dT%H:%M:%S")
    if row["created_at"] < cutoff:
        tx.execute("DELETE FROM idempotency_keys WHERE actor_id = ? AND key = ?", (claim.actor_id, claim.key))
        return None
    if row["fingerprint"] != claim.fingerprint:
        raise Unprocessable(
            "this Idempotency-Key was already used for a different request",
            code="idempotency_key_reused",
        )
    return row["status"], loads(row["result"])


def reserve_claim(tx: WriteTx, claim: IdempotencyClaim) -> None:
    """With several gateways (issue 17), a keyed send first marks its key in progress in a commit
    of its own (status 0): the same key sent meanwhile to another gateway finds the mark and gets
    409, as a concurrent duplicate on one process does (Zulip answers 409; so do we). A key
    answered already is left for the send's write to replay. A mark left by a gateway that died
    mid-send is taken over: at once when it names a process of this machine that is gone (a
    killed `--workers` worker), else once it is `CLAIM_ABANDONED_SECONDS` old.

    While a key is in progress its `result` names the process holding it (`claimant`)."""
    row = tx.one(
        "SELECT status, result, created_at FROM idempotency_keys WHERE actor_id = ? AND key = ?",
        (claim.actor_id, claim.key),
    )
    now, holder = now_rfc3339(), dumps({"claimant": claimant()})
    if row is None:
        tx.execute(
            "INSERT INTO idempotency_keys (actor_id, key, fingerprint, status, result, created_at)"
            " VALUES (?, ?, ?, 0, ?, ?)",
            (claim.actor_id, claim.key, claim.fingerprint, holder, now),
        )
        return
    if row["status"] != 0:
        return
    abandoned = (datetime.now(UTC) - timedelta(seconds=CLAIM_ABANDONED_SECONDS)).strftime("%Y-%m-%dT%H:%M:%S")
    if row["created_at"] >= abandoned and not _claimant_gone(loads(row["result"])):
        raise Conflict(
            "a request with this Idempotency-Key is still in progress; retry it later",
            code="idempotency_key_in_use",
        )
    tx.execute(
        "UPDATE idempotency_keys SET created_at = ?, fingerprint = ?, result = ? WHERE actor_id = ? AND key = ?",
        (now, claim.fingerprint, holder, claim.actor_id, claim.key),
    )


@functools.cache
def _machine() -> str | None:
    """This kernel's boot and PID namespace (Linux): processes that share it see each other's
    pids, so one of them can tell whether another still lives. None where it cannot be told."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}/{namespace}"


def claimant() -> str | None:
    """The name an in-progress mark gives the process holding it: `<machine>/<pid>`."""
    machine = _machine()
    return None if machine is None else f"{machine}/{os.getpid()}"


def _claimant_gone(held: Any) -> bool:
    """Whether a mark's holder is a process of this machine (same boot, same PID namespace) that
    no longer exists: a worker killed mid-send, whose key a retry may take at once. Anything else
    (another machine, a live process, a mark without a holder) waits for the age rule. A pid
    reused since could only make a dead holder look alive: the safe side."""
    machine = _machine()
    name = held.get("claimant") if isinstance(held, dict) else None
    if machine is None or not isinstance(name, str) or not name.startswith(machine + "/"):
        return False
    pid = name[len(machine) + 1 :]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def forget_claims_in_progress(tx: WriteTx) -> int:
    """At a start with no gateway running (the workers' supervisor): every key still marked in
    progress was left by a process that died mid-send, so a retry may take it at once."""
    return int(tx.execute("DELETE FROM idempotency_keys WHERE status = 0").rowcount or 0)


def release_claim(tx: WriteTx, claim: IdempotencyClaim) -> None:
    """A send that failed gives its in-progress mark back, so a retry is not refused."""
    tx.execute(
        "DELETE FROM idempotency_keys WHERE actor_id = ? AND key = ? AND status = 0", (claim.actor_id, claim.key)
    )


def remember_claim(tx: WriteTx, claim: IdempotencyClaim, status: int, result: Any) -> None:
    """The answer to a request with this key (its reservation, when it made one, gets it)."""
    tx.execute(
        "INSERT INTO idempotency_keys (actor_id, key, fingerprint, status, result, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (actor_id, key) DO UPDATE SET status = excluded.status,"
        " result = excluded.result",
        (claim.actor_id, claim.key, claim.fingerprint, status, dumps(result), now_rfc3339()),
    )


def prune_idempotency_keys(tx: WriteTx) -> int:
    cutoff = (datetime.now(UTC) - IDEMPOTENCY_WINDOW).strftime("%Y-%m-%dT%H:%M:%S")
    return int(tx.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (cutoff,)).rowcount)


# --- posting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostResult:
    status: int  # 201 when created now, or the original status when replayed
    message: dict[str, Any]
    thread: dict[str, Any]
    replayed: bool


def _check_attachments(tx: WriteTx, org_id: str, actor: Actor, ids: list[str], message_id: str) -> list[Any]:
    """The attachments a new message claims: each must be the sender's own and unattached."""
    attached = []
    for attachment_id in ids:
        row = tx.one("SELECT * FROM attachments WHERE id = ? AND org_id = ?", (attachment_id, org_id))
        if row is None or row["uploader_id"] != actor.id:
            raise Unprocessable(
                f"attachment {attachment_id} does not exist or was not uploaded by you",
                code="unknown_attachment",
                details={"attachment_id": attachment_id},
            )
        if row["message_id"] is not None:
            raise Unprocessable(
                f"attachment {attachment_id} is already attached to a message",
                code="attachment_in_use",
                details={"attachment_id": attachment_id},
            )
        attached.append({**attachment_json(row), "message_id": message_id})
    return attached


def post_message(
    tx: WriteTx,
    *,
    actor: Actor,
    channel: dict[str, Any],
    thread_id: str | None,
    text: str,
    fmt: str = "markdown",
    state: str = "completed",
    attachments: list[str] | None = None,
    blocks: Any = None,
    metadata: dict[str, Any] | None = None,
    card_state: dict[str, Any] | None = None,
    client_msg_id: str | None = None,
    claim: IdempotencyClaim | None = None,
    mentions: Sequence[str] = (),
    title: str | None = None,
) -> PostResult:
    """Create a message; with `thread_id` None it opens a thread in `channel` (titled `title`, or
    after the text). `mentions` are the `@handles` in its text: the people and agents they name
    follow the thread."""
    if claim is not None:
        replay = replay_claim(tx, claim)
        if replay is not None:
            status, body = replay
            return PostResult(status, body["message"], body["thread"], replayed=True)
    now = now_rfc3339()
    message_id = new_id("msg")
    seq = tx.next_seq()
    author = {"kind": actor.kind, "id": actor.id}
    preview = plain_preview(text)
    if thread_id is None:
        thread_row = {
            "id": new_id("th"),
            "org_id": channel["org_id"],
            "team_id": channel["team_id"],
            "channel_id": channel["id"],
            "root_message_id": message_id,
            "title": title_of(text) if title is None else title[:TITLE_CHARS],
            "reply_count": 0,
            "created_at": now,
            "created_by_kind": actor.kind,
            "created_by_id": actor.id,
            "last_message_at": now,
            "last_seq": seq,
            "last_message_id": message_id,
            "last_author_kind": actor.kind,
            "last_author_id": actor.id,
            "last_preview": preview,
            "repliers": "[]",
        }
        tx.execute(
            "INSERT INTO threads (id, org_id, team_id, channel_id, root_message_id, title, reply_count,"
            " created_at, created_by_kind, created_by_id, last_message_at, last_seq, last_message_id,"
            " last_author_kind, last_author_id, last_preview, repliers) VALUES (:id, :org_id,"
            " :team_id, :channel_id, :root_message_id, :title, :reply_count, :created_at, :created_by_kind,"
            " :created_by_id, :last_message_at, :last_seq, :last_message_id, :last_author_kind, :last_author_id,"
            " :last_preview, :repliers)",
            thread_row,
        )
        new_thread = True
    else:
        found = tx.one("SELECT * FROM threads WHERE id = ?", (thread_id,))
        if found is None:  # gone since the route found it (retention deletes old threads)
            raise NotFound("no such thread")
        thread_row = dict(found)
        repliers = [author, *[r for r in loads(thread_row["repliers"]) if r != author]][: chat.MAX_REPLIERS]
        thread_row.update(
            reply_count=thread_row["reply_count"] + 1,
            last_message_at=now,
            last_seq=seq,
            last_message_id=message_id,
            last_author_kind=actor.kind,
            last_author_id=actor.id,
            last_preview=preview,
            repliers=dumps(repliers),
        )
        tx.execute(
            "UPDATE threads SET reply_count = :reply_count, last_message_at = :last_message_at,"
            " last_seq = :last_seq, last_message_id = :last_message_id, last_author_kind = :last_author_kind,"
            " last_author_id = :last_author_id, last_preview = :last_preview, repliers = :repliers WHERE id = :id",
            thread_row,
        )
        new_thread = False
    thread = thread_json(thread_row)
    attached = _check_attachments(tx, channel["org_id"], actor, attachments or [], message_id)
    row = {
        "id": message_id,
        "seq": seq,
        "org_id": channel["org_id"],
        "team_id": channel["team_id"],
        "channel_id": channel["id"],
        "thread_id": thread["id"],
        "author_kind": actor.kind,
        "author_id": actor.id,
        "text": text,
        "format": fmt,
        "state": state,
        "failure_reason": None,
        "error": None,
        "attachments": dumps(attached),
        "blocks": None if blocks is None else dumps(blocks),
        "metadata": dumps(metadata or {}),
        "card_state": None if card_state is None else dumps(card_state),
        "reactions": "[]",
        "edited_at": None,
        "deleted_at": None,
        "deleted_by": None,
        "client_msg_id": client_msg_id,
        "created_at": now,
        "updated_at": now,
    }
    tx.execute(
        "INSERT INTO messages (id, seq, org_id, team_id, channel_id, thread_id, author_kind, author_id, text,"
        " format, state, failure_reason, error, attachments, blocks, metadata, card_state, client_msg_id, created_at,"
        " updated_at) VALUES (:id, :seq, :org_id, :team_id, :channel_id, :thread_id, :author_kind, :author_id,"
        " :text, :format, :state, :failure_reason, :error, :attachments, :blocks, :metadata, :card_state,"
        " :client_msg_id, :created_at, :updated_at)",
        row,
    )
    for attachment in attached:
        tx.execute("UPDATE attachments SET message_id = ? WHERE id = ?", (message_id, attachment["id"]))
    tx.execute("UPDATE channels SET last_seq = ? WHERE id = ?", (seq, channel["id"]))
    chat.note_post(
        tx,
        thread_id=thread["id"],
        channel=channel,
        message_id=message_id,
        author_id=actor.id,
        now=now,
        new_thread=new_thread,
        mentioned=chat.resolve_handles(tx, channel["org_id"], mentions) if mentions else (),
    )
    message = message_json(row)
    envelope = {
        "actor": actor,
        "org_id": channel["org_id"],
        "team_id": channel["team_id"],
        "channel_id": channel["id"],
        "thread_id": thread["id"],
    }
    key = claim.key if claim is not None else None
    created = tx.emit(Event(MessageCreated(message=message), idempotency_key=key, **envelope))
    assert created.seq == seq
    if new_thread:
        tx.emit(Event(ThreadCreated(thread=thread), **envelope))
    if claim is not None:
        remember_claim(tx, claim, 201, {"message": message, "thread": thread})
    return PostResult(201, message, thread, replayed=False)


def _message_row(tx: WriteTx, message_id: str) -> Any:
    return tx.one("SELECT * FROM messages WHERE id = ?", (message_id,))


def _envelope(row: Any) -> dict[str, Any]:
    return {
        "actor": Actor(row["author_kind"], row["author_id"]),
        "org_id": row["org_id"],
        "team_id": row["team_id"],
        "channel_id": row["channel_id"],
        "thread_id": row["thread_id"],
    }


def checkpoint_streams(tx: WriteTx, texts: dict[str, str]) -> None:
    """Save the text so far of streaming messages (no event: deltas carried it live)."""
    now = now_rfc3339()
    tx.conn.executemany(
        "UPDATE messages SET text = ?, state = 'streaming', updated_at = ?"
        " WHERE id = ? AND state IN ('created', 'streaming')",
        [(text, now, message_id) for message_id, text in texts.items()],
    )


def complete_message(
    tx: WriteTx,
    message_id: str,
    text: str,
    *,
    blocks: Any = None,
    card_state: Any = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = None,
) -> dict[str, Any] | None:
    """Finish a streaming message with its final text; None when it is already finished.
    `reason` is `stopped` when someone stopped it (the text is what was written by then)."""
    row = _message_row(tx, message_id)
    if row is None or row["state"] not in OPEN_STATES:
        return None
    merged = {**loads(row["metadata"]), **(metadata or {})}
    tx.execute(
        "UPDATE messages SET text = ?, state = 'completed', blocks = COALESCE(?, blocks),"
        " card_state = COALESCE(?, card_state), metadata = ?, updated_at = ? WHERE id = ?",
        (
            text,
            None if blocks is None else dumps(blocks),
            None if card_state is None else dumps(card_state),
            dumps(merged),
            now_rfc3339(),
            message_id,
        ),
    )
    chat.refresh_preview(tx, message_id, row["thread_id"], text)
    message = message_json(_message_row(tx, message_id))
    tx.emit(Event(MessageCompleted(message=message, reason=reason), **_envelope(row)))
    return message


def person_author(tx: WriteTx, message_id: str) -> str | None:
    """The id of a message's author when a person wrote it (whose turn an agent's reply is)."""
    row = tx.one("SELECT author_kind, author_id FROM messages WHERE id = ?", (message_id,))
    return str(row["author_id"]) if row is not None and row["author_kind"] == "user" else None


def fail_message(
    tx: WriteTx, message_id: str, *, reason: str, error: str | None = None, text: str | None = None
) -> dict[str, Any] | None:
    """End an open message as failed (reason `error`, `interrupted`, `cancelled`)."""
    row = _message_row(tx, message_id)
    if row is None or row["state"] not in OPEN_STATES:
        return None
    tx.execute(
        "UPDATE messages SET state = 'failed', failure_reason = ?, error = ?, text = COALESCE(?, text),"
        " updated_at = ? WHERE id = ?",
        (reason, error, text, now_rfc3339(), message_id),
    )
    message = message_json(_message_row(tx, message_id))
    tx.emit(Event(MessageFailed(message=message, reason=reason, error=error), **_envelope(row)))
    return message


def update_message(tx: WriteTx, message_id: str, **changes: Any) -> dict[str, Any] | None:
    """Change a message in place (blocks, metadata) and emit message.updated."""
    row = _message_row(tx, message_id)
    if row is None:
        return None
    allowed = {"blocks", "metadata", "text", "card_state"}
    assert set(changes) <= allowed, f"cannot update {set(changes) - allowed}"
    sets, params = [], []
    for column, value in changes.items():
        sets.append(f"{column} = ?")
        params.append(value if column == "text" else dumps(value))
    sets.append("updated_at = ?")
    params.extend([now_rfc3339(), message_id])
    tx.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", params)
    message = message_json(_message_row(tx, message_id))
    tx.emit(Event(MessageUpdated(message=message), **_envelope(row)))
    return message


def close_for_continuation(tx: WriteTx, message_id: str, continued_in: str) -> dict[str, Any] | None:
    """An agent's reply goes on in a newer message below (the thread moved on mid-turn: a
    question, an approval card): end this one with its text so far, marked `continued_in`, as a
    change in place (`message.updated`: the turn is not over)."""
    row = _message_row(tx, message_id)
    if row is None or row["state"] not in OPEN_STATES:
        return None
    metadata = {**loads(row["metadata"]), "continued_in": continued_in}
    tx.execute(
        "UPDATE messages SET state = 'completed', metadata = ?, updated_at = ? WHERE id = ?",
        (dumps(metadata), now_rfc3339(), message_id),
    )
    message = message_json(_message_row(tx, message_id))
    tx.emit(Event(MessageUpdated(message=message), **_envelope(row)))
    return message


def interrupt_open_streams(tx: WriteTx) -> list[dict[str, Any]]:
    """At start-up: every message still open was cut by a restart; end each as `interrupted`."""
    ids = [row["id"] for row in tx.all("SELECT id FROM messages WHERE state IN ('created', 'streaming')")]
    ended = []
    for message_id in ids:
        message = fail_message(tx, message_id, reason="interrupted", error="the server restarted mid-stream")
        if message is not None:
            ended.append(message)
    return ended


# --- attachments ---------------------------------------------------------------------------


def record_attachment(
    tx: WriteTx,
    *,
    attachment_id: str,
    org_id: str,
    actor: Actor,
    filename: str,
    content_type: str,
    size: int,
    sha256: str,
) -> dict[str, Any]:
    row = {
        "id": attachment_id,
        "org_id": org_id,
        "uploader_kind": actor.kind,
        "uploader_id": actor.id,
        "filename": filename,
        "content_type": content_type,
        "size": size,
        "sha256": sha256,
        "message_id": None,
        "created_at": now_rfc3339(),
    }
    tx.execute(
        "INSERT INTO attachments (id, org_id, uploader_kind, uploader_id, filename, content_type, size, sha256,"
        " message_id, created_at) VALUES (:id, :org_id, :uploader_kind, :uploader_id, :filename,"
        " :content_type, :size, :sha256, :message_id, :created_at)",
        row,
    )
    return attachment_json(row)


async def get_attachment(db: Database, attachment_id: str) -> Any:
    return await db.fetchone("SELECT * FROM attachments WHERE id = ?", (attachment_id,))


# --- reads ---------------------------------------------------------------------------------


async def get_thread(db: Database, thread_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM threads WHERE id = ?", (thread_id,))
    return None if row is None else thread_json(row)


async def get_message(db: Database, message_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM messages WHERE id = ?", (message_id,))
    return None if row is None else message_json(row)


async def list_threads(
    db: Database, channel_id: str, *, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Threads of a channel, most recently active first; returns the page and the next cursor."""
    if before is None:
        rows = await db.fetchall(
            "SELECT * FROM threads WHERE channel_id = ? ORDER BY last_seq DESC LIMIT ?",
            (channel_id, limit + 1),
        )
    else:
        rows = await db.fetchall(
            "SELECT * FROM threads WHERE channel_id = ? AND last_seq < ? ORDER BY last_seq DESC LIMIT ?",
            (channel_id, before, limit + 1),
        )
    page = [thread_json(row) for row in rows[:limit]]
    return page, (page[-1]["last_seq"] if len(rows) > limit else None)


@dataclass(frozen=True)
class HistoryPage:
    messages: list[dict[str, Any]]
    older: int | None  # pass as `before` for the previous page; None at the start
    newer: int | None  # pass as `after` for the next page; None at the end


async def history(
    db: Database, thread_id: str, *, before: int | None, after: int | None, limit: int, around: int | None = None
) -> HistoryPage:
    """A page of a thread in ascending order. With neither cursor: the newest page. With
    `around`: the message at that seq (or the nearest) with older and newer ones either side."""
    if around is not None:
        older = await history(db, thread_id, before=around + 1, after=None, limit=max(1, limit // 2 + 1))
        newer = await history(db, thread_id, before=None, after=around, limit=max(1, limit - len(older.messages)))
        return HistoryPage(older.messages + newer.messages, older.older, newer.newer)
    if after is not None:
        rows = await db.fetchall(
            "SELECT * FROM messages WHERE thread_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
            (thread_id, after, limit + 1),
        )
        more_newer = len(rows) > limit
        page = [message_json(row) for row in rows[:limit]]
        more_older = (
            await db.fetchone("SELECT 1 FROM messages WHERE thread_id = ? AND seq <= ? LIMIT 1", (thread_id, after))
            is not None
        )
    else:
        bound = "AND seq < ?" if before is not None else ""
        params: tuple[Any, ...] = (thread_id, before, limit + 1) if before is not None else (thread_id, limit + 1)
        rows = await db.fetchall(
            f"SELECT * FROM messages WHERE thread_id = ? {bound} ORDER BY seq DESC LIMIT ?", params
        )
        more_older = len(rows) > limit
        page = [message_json(row) for row in reversed(rows[:limit])]
        more_newer = (
            before is not None
            and await db.fetchone(
                "SELECT 1 FROM messages WHERE thread_id = ? AND seq >= ? LIMIT 1", (thread_id, before)
            )
            is not None
        )
    if not page:
        return HistoryPage([], before if more_older else None, after if more_newer else None)
    return HistoryPage(
        page,
        page[0]["seq"] if more_older else None,
        page[-1]["seq"] if more_newer else None,
    )


# --- read markers --------------------------------------------------------------------------


def mark_read(tx: WriteTx, user_id: str, channel_id: str, seq: int) -> int:
    """Move a member's read marker forward (never back); return where it stands."""
    tx.execute(
        "INSERT INTO channel_reads (user_id, channel_id, last_read_seq, updated_at) VALUES (?, ?, ?, ?)"
        # The old row's column named with its table: Postgres finds a bare name ambiguous here.
        " ON CONFLICT(user_id, channel_id) DO UPDATE SET"
        " last_read_seq = MAX(channel_reads.last_read_seq, excluded.last_read_seq),"
        " updated_at = excluded.updated_at",
        (user_id, channel_id, seq, now_rfc3339()),
    )
    return int(
        tx.one("SELECT last_read_seq FROM channel_reads WHERE user_id = ? AND channel_id = ?", (user_id, channel_id))[0]
    )


UNREAD_CAP = 1000


async def read_state(db: Database, user_id: str, org_id: str) -> dict[str, tuple[int, int]]:
    """Per channel: (last read seq, unread messages by others since, counted up to UNREAD_CAP).
    Messages from before the member joined the organisation never count as unread."""
    rows = await db.fetchall(
        "SELECT c.id, COALESCE(r.last_read_seq, 0) AS last_read,"
        " (SELECT COUNT(*) FROM (SELECT 1 FROM messages m WHERE m.channel_id = c.id"
        "   AND m.seq > COALESCE(r.last_read_seq, 0) AND m.author_id IS NOT :user"
        "   AND m.created_at > COALESCE((SELECT created_at FROM users WHERE id = :user), '')"
        "   LIMIT :cap) AS capped) AS unread"
        " FROM channels c LEFT JOIN channel_reads r ON r.channel_id = c.id AND r.user_id = :user"
        " WHERE c.org_id = :org",
        {"user": user_id, "org": org_id, "cap": UNREAD_CAP},
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def authors(db: Database, message_ids: list[str]) -> set[str]:
    """The ids of the people and agents who wrote these messages."""
    if not message_ids:
        return set()
    marks = ", ".join("?" for _ in message_ids)
    rows = await db.fetchall(f"SELECT DISTINCT author_id FROM messages WHERE id IN ({marks})", message_ids)
    return {str(row[0]) for row in rows if row[0]}


def answered_turn(tx: WriteTx, thread_id: str, message_ids: list[str]) -> str | None:
    """The turn of an earlier agent reply in the thread to the same messages (a new turn on them
    is a retry of it), or None."""
    if not message_ids:
        return None
    rows = tx.all(
        "SELECT metadata FROM messages WHERE thread_id = ? AND author_kind = 'agent' ORDER BY seq DESC LIMIT 50",
        (thread_id,),
    )
    for row in rows:
        metadata = loads(row["metadata"])
        if metadata.get("in_reply_to") == message_ids and metadata.get("turn_id"):
            return str(metadata["turn_id"])
    return None
