"""The JSON shapes of messages, threads and attachments as the API returns them, and a thread's
title. Shared by the message store and the chat store (edits, reactions, the inbox)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..events import Actor
from .db import loads

TITLE_CHARS = 80


def message_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "seq": row["seq"],
        "org_id": row["org_id"],
        "team_id": row["team_id"],
        "channel_id": row["channel_id"],
        "thread_id": row["thread_id"],
        "author": {"kind": row["author_kind"], "id": row["author_id"]},
        "text": row["text"],
        "format": row["format"],
        "state": row["state"],
        "failure_reason": row["failure_reason"],
        "error": row["error"],
        "attachments": loads(row["attachments"]),
        "blocks": loads(row["blocks"]),
        "metadata": loads(row["metadata"]),
        "card_state": loads(row["card_state"]),
        "reactions": loads(row["reactions"]),
        "edited_at": row["edited_at"],
        "deleted_at": row["deleted_at"],
        "deleted_by": row["deleted_by"],
        "client_msg_id": row["client_msg_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def thread_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "org_id": row["org_id"],
        "team_id": row["team_id"],
        "channel_id": row["channel_id"],
        "root_message_id": row["root_message_id"],
        "title": row["title"],
        "reply_count": row["reply_count"],
        "created_at": row["created_at"],
        "created_by": {"kind": row["created_by_kind"], "id": row["created_by_id"]},
        "last_message_at": row["last_message_at"],
        "last_seq": row["last_seq"],
        "last_reply": _last_reply(
            row["last_message_id"],
            {"kind": row["last_author_kind"], "id": row["last_author_id"]},
            row["last_preview"],
            row["last_message_at"],
        ),
        "repliers": loads(row["repliers"]),
    }


PREVIEW_CHARS = 140


def plain_preview(text: str) -> str:
    """A message as one line of at most PREVIEW_CHARS (the thread list's last reply)."""
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def _last_reply(message_id: str | None, author: dict[str, Any], preview: str, at: str) -> dict[str, Any] | None:
    if message_id is None:
        return None
    return {"message_id": message_id, "author": author, "preview": plain_preview(preview), "at": at}


def attachment_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "filename": row["filename"],
        "content_type": row["content_type"],
        "size": row["size"],
        "sha256": row["sha256"],
        "url": f"/v1/attachments/{row['id']}",
        "message_id": row["message_id"],
        "created_at": row["created_at"],
    }


_MARKISH = re.compile(r"[*_`~\[\n]|^\s*(?:[#>+-]|\d)")  # might hold a mark: take the slow path
_FENCE = re.compile(r"^\s*(```|~~~)[\w+-]*\s*$")
_LINE_MARK = re.compile(r"^\s{0,3}(?:#{1,6}\s+|(?:>\s?)+|[-*+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__|~~)(\S(?:.*?\S)?)\1")
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(\S(?:.*?\S)?)\1(?![\w*])")
_CODE = re.compile(r"`+([^`]*)`+")


def title_of(text: str) -> str:
    """A thread's title: its first message as plain text, on one line.

    Only real Markdown marks are dropped (fence lines, heading, quote and list markers at
    the start of a line, emphasis pairs, code spans, link targets); anything else, such as
    a literal ``<b>`` or a lone ``*``, is kept as written, since the UI shows it as text."""
    if not _MARKISH.search(text):
        line = " ".join(text.split())
        return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
    lines = [_LINE_MARK.sub("", line) for line in text.splitlines() if not _FENCE.match(line)]
    plain = _LINK.sub(r"\1", " ".join(lines))
    plain = _CODE.sub(r"\1", plain)
    plain = _STRONG.sub(r"\2", plain)
    plain = _EMPHASIS.sub(r"\2", plain)
    line = " ".join(plain.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


def envelope_of(message: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
    """The envelope fields of an event about `message`, done by `actor`."""
    return {
        "actor": actor,
        "org_id": message["org_id"],
        "team_id": message["team_id"],
        "channel_id": message["channel_id"],
        "thread_id": message["thread_id"],
    }


def message_in(tx: Any, message_id: str) -> dict[str, Any]:
    """A message as the API shows it, read inside a write transaction."""
    return message_json(tx.one("SELECT * FROM messages WHERE id = ?", (message_id,)))
