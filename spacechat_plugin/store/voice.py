"""Voice memos and the sentences of spoken replies: SQL and the JSON shapes the API returns.

A person's memo is posted with its message in one transaction; its transcript, a failure, or a
spoken reply's sentences and final audio are written with the event that announces them, so the
log and these rows never disagree (docs/voice.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..events import (
    Actor,
    Event,
    VoiceMemoCreated,
    VoiceMemoFailed,
    VoiceMemoSpeech,
    VoiceMemoTranscribed,
    now_rfc3339,
)
from . import messages as message_store
from .db import Database, WriteTx, dumps, loads

OPEN_STATES = ("transcribing", "speaking")


def memo_json(row: Any) -> dict[str, Any]:
    memo_id = row["id"]
    return {
        "id": memo_id,
        "kind": row["kind"],
        "org_id": row["org_id"],
        "channel_id": row["channel_id"],
        "thread_id": row["thread_id"],
        "message_id": row["message_id"],
        "author": {"kind": row["author_kind"], "id": row["author_id"]},
        "content_type": row["content_type"],
        "size": row["size"],
        "duration_ms": row["duration_ms"],
        "peaks": loads(row["peaks"]),
        "status": row["status"],
        "error": row["error"],
        "url": f"/v1/voice/memos/{memo_id}",
        "transcript_url": f"/v1/voice/memos/{memo_id}/transcript",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def message_voice(memo: dict[str, Any]) -> dict[str, Any]:
    """What a message carries of its memo (`metadata.voice`): enough to draw the player."""
    return {
        key: memo[key]
        for key in ("id", "kind", "content_type", "duration_ms", "peaks", "status", "error", "url", "transcript_url")
    }


def _envelope(row: Any) -> dict[str, Any]:
    return {
        "actor": Actor(row["author_kind"], row["author_id"]),
        "org_id": row["org_id"],
        "team_id": row["team_id"],
        "channel_id": row["channel_id"],
        "thread_id": row["thread_id"],
    }


@dataclass(frozen=True)
class Audio:
    """A checked recording: its stored form and what was measured of it."""

    content_type: str
    size: int
    sha256: str
    duration_ms: int
    peaks: list[float]


def _insert(
    tx: WriteTx,
    *,
    memo_id: str,
    channel: dict[str, Any],
    thread_id: str,
    message_id: str,
    actor: Actor,
    kind: str,
    status: str,
    audio: Audio,
    voice: str = "",
) -> dict[str, Any]:
    now = now_rfc3339()
    row = {
        "id": memo_id,
        "org_id": channel["org_id"],
        "team_id": channel["team_id"],
        "channel_id": channel["id"],
        "thread_id": thread_id,
        "message_id": message_id,
        "author_kind": actor.kind,
        "author_id": actor.id,
        "kind": kind,
        "content_type": audio.content_type,
        "size": audio.size,
        "sha256": audio.sha256,
        "duration_ms": audio.duration_ms,
        "peaks": dumps(audio.peaks),
        "status": status,
        "error": None,
        "transcript": None,
        "voice": voice,
        "created_at": now,
        "updated_at": now,
    }
    tx.execute(
        "INSERT INTO voice_memos (id, org_id, team_id, channel_id, thread_id, message_id, author_kind, author_id,"
        " kind, content_type, size, sha256, duration_ms, peaks, status, error, transcript, voice, created_at,"
        " updated_at) VALUES (:id, :org_id, :team_id, :channel_id, :thread_id, :message_id, :author_kind,"
        " :author_id, :kind, :content_type, :size, :sha256, :duration_ms, :peaks, :status, :error, :transcript,"
        " :voice, :created_at, :updated_at)",
        row,
    )
    memo = memo_json(row)
    tx.emit(Event(VoiceMemoCreated(memo=memo), **_envelope(row)))
    return memo


@dataclass(frozen=True)
class PostedMemo:
    result: message_store.PostResult
    memo: dict[str, Any] | None  # None when the send was a replay


def post_memo(
    tx: WriteTx,
    *,
    memo_id: str,
    actor: Actor,
    channel: dict[str, Any],
    thread_id: str | None,
    audio: Audio,
    claim: message_store.IdempotencyClaim | None,
) -> PostedMemo:
    """Post a person's memo: its message (text empty until transcribed) and the memo row."""
    seconds = round(audio.duration_ms / 1000)
    provisional = {
        "id": memo_id,
        "kind": "memo",
        "content_type": audio.content_type,
        "duration_ms": audio.duration_ms,
        "peaks": audio.peaks,
        "status": "transcribing",
        "error": None,
        "url": f"/v1/voice/memos/{memo_id}",
        "transcript_url": f"/v1/voice/memos/{memo_id}/transcript",
    }
    result = message_store.post_message(
        tx,
        actor=actor,
        channel=channel,
        thread_id=thread_id,
        text="",
        fmt="plain",
        metadata={"voice": provisional},
        claim=claim,
        title=f"Voice memo ({seconds // 60}:{seconds % 60:02d})",
    )
    if result.replayed:
        return PostedMemo(result, None)
    memo = _insert(
        tx,
        memo_id=memo_id,
        channel=channel,
        thread_id=result.thread["id"],
        message_id=result.message["id"],
        actor=actor,
        kind="memo",
        status="transcribing",
        audio=audio,
    )
    return PostedMemo(result, memo)


def start_speech(
    tx: WriteTx, *, memo_id: str, reply: dict[str, Any], channel: dict[str, Any], voice: str
) -> dict[str, Any]:
    """An agent starts to speak its reply (`reply`, its message): the speech memo, no audio yet."""
    actor = Actor(reply["author"]["kind"], reply["author"]["id"])
    empty = Audio("audio/ogg", 0, "", 0, [])
    return _insert(
        tx,
        memo_id=memo_id,
        channel=channel,
        thread_id=reply["thread_id"],
        message_id=reply["id"],
        actor=actor,
        kind="speech",
        status="speaking",
        audio=empty,
        voice=voice,
    )


def add_clip(tx: WriteTx, memo_id: str, index: int, text: str, duration_ms: int) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM voice_memos WHERE id = ?", (memo_id,))
    if row is None or row["status"] != "speaking":
        return None
    now = now_rfc3339()
    tx.execute(
        "INSERT INTO voice_clips (memo_id, idx, text, duration_ms, created_at) VALUES (?, ?, ?, ?, ?)",
        (memo_id, index, text, duration_ms, now),
    )
    clip = clip_json(memo_id, index, text, duration_ms)
    tx.emit(Event(VoiceMemoSpeech(memo_id=memo_id, message_id=row["message_id"], clip=clip), **_envelope(row)))
    return clip


def clip_json(memo_id: str, index: int, text: str, duration_ms: int) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "duration_ms": duration_ms,
        "url": f"/v1/voice/memos/{memo_id}/clips/{index}",
    }


def _set_message_voice(tx: WriteTx, memo: dict[str, Any], text: str | None = None) -> dict[str, Any] | None:
    """Keep the memo's message in step (`metadata.voice`; the transcript as its text)."""
    message = tx.one("SELECT metadata, text FROM messages WHERE id = ?", (memo["message_id"],))
    if message is None:
        return None
    metadata = {**loads(message["metadata"]), "voice": message_voice(memo)}
    changes: dict[str, Any] = {"metadata": metadata}
    if text is not None:
        changes["text"] = text
    return message_store.update_message(tx, memo["message_id"], **changes)


def finish(
    tx: WriteTx, memo_id: str, transcript: dict[str, Any], audio: Audio | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """A memo's transcript is ready (or a spoken reply's whole audio, with `audio`). The person's
    memo message takes the transcript as its text. None when the memo is no longer open."""
    row = tx.one("SELECT * FROM voice_memos WHERE id = ?", (memo_id,))
    if row is None or row["status"] not in OPEN_STATES:
        return None
    sets = "status = 'transcribed', transcript = ?, error = NULL, updated_at = ?"
    params: list[Any] = [dumps(transcript), now_rfc3339()]
    if audio is not None:
        sets += ", content_type = ?, size = ?, sha256 = ?, duration_ms = ?, peaks = ?, voice = ?"
        params += [audio.content_type, audio.size, audio.sha256, audio.duration_ms, dumps(audio.peaks)]
        params.append(str(transcript.get("model") or row["voice"]))
    tx.execute(f"UPDATE voice_memos SET {sets} WHERE id = ?", [*params, memo_id])
    updated = tx.one("SELECT * FROM voice_memos WHERE id = ?", (memo_id,))
    memo = memo_json(updated)
    message = _set_message_voice(tx, memo, transcript["text"] if row["kind"] == "memo" else None)
    tx.emit(Event(VoiceMemoTranscribed(memo=memo, transcript=transcript), **_envelope(row)))
    return memo, message


def fail(tx: WriteTx, memo_id: str, reason: str) -> dict[str, Any] | None:
    """Transcribing (or speaking) failed: the memo says why; a recording stays playable."""
    row = tx.one("SELECT * FROM voice_memos WHERE id = ?", (memo_id,))
    if row is None or row["status"] not in OPEN_STATES:
        return None
    tx.execute(
        "UPDATE voice_memos SET status = 'failed', error = ?, updated_at = ? WHERE id = ?",
        (reason, now_rfc3339(), memo_id),
    )
    memo = memo_json(tx.one("SELECT * FROM voice_memos WHERE id = ?", (memo_id,)))
    _set_message_voice(tx, memo)
    tx.emit(Event(VoiceMemoFailed(memo=memo, reason=reason), **_envelope(row)))
    return memo


# --- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredMemo:
    memo: dict[str, Any]
    transcript: dict[str, Any] | None
    voice: str


async def get_memo(db: Database, memo_id: str) -> StoredMemo | None:
    row = await db.fetchone("SELECT * FROM voice_memos WHERE id = ?", (memo_id,))
    if row is None:
        return None
    return StoredMemo(memo_json(row), loads(row["transcript"]), row["voice"])


async def memo_of_message(db: Database, message_id: str, kind: str = "memo") -> dict[str, Any] | None:
    row = await db.fetchone(
        "SELECT * FROM voice_memos WHERE message_id = ? AND kind = ? ORDER BY created_at DESC LIMIT 1",
        (message_id, kind),
    )
    return None if row is None else memo_json(row)


async def open_memos(db: Database) -> list[dict[str, Any]]:
    """Memos a restart left open: recordings still to transcribe, replies cut while speaking."""
    rows = await db.fetchall("SELECT * FROM voice_memos WHERE status IN ('transcribing', 'speaking')")
    return [memo_json(row) for row in rows]


async def clips(db: Database, memo_id: str) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        "SELECT idx, text, duration_ms FROM voice_clips WHERE memo_id = ? ORDER BY idx", (memo_id,)
    )
    return [clip_json(memo_id, row["idx"], row["text"], row["duration_ms"]) for row in rows]
