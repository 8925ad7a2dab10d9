"""Direct conversations (issue 13): one-to-one or small groups of people and agents.

A direct conversation is a private channel of kind `dm` whose members are fixed when it is made
(Slack makes a new group conversation rather than adding someone to one; so do we). It is
thread-first like any channel: post to `/v1/channels/{id}/messages`, read threads, search it.
Privacy is a private channel's: nobody outside it, owners included, sees that it exists (404).
An agent in it answers every message, as in its own channel.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, Conflict, NotFound
from ..store import dms as dm_store
from ..store import messages as message_store
from ..store.db import WriteTx
from .common import JSONResponse, operation, principal, read_json, spacechat
from .models import CreateDirect

MAX_MEMBERS = 9  # you and eight others, as Slack's group conversations


def refuse_direct(channel: dict[str, Any], what: str) -> None:
    """Channel administration does not apply to a direct conversation (its members are fixed)."""
    if channel.get("kind") == "dm":
        raise Conflict(f"a direct conversation cannot be {what}; start a new one", code="direct_conversation")


@operation("Your direct conversations, most recently active first", tags=["dms"], scope="messages:read")
async def list_dms(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    conversations = await dm_store.of_user(app.db, who.user_id)
    reads = await message_store.read_state(app.db, who.user_id, who.org_id)
    shown = []
    for conversation in conversations:
        last_read, unread = reads.get(conversation["id"], (0, 0))
        shown.append({**conversation, "member": True, "last_read_seq": last_read, "unread_count": unread})
    return JSONResponse({"dms": shown, "unread_cap": message_store.UNREAD_CAP})


@operation(
    "Open the direct conversation with these people or agents (made the first time)",
    tags=["dms"],
    body=CreateDirect,
    status=201,
    also=(200,),
    scope="messages:write",
)
async def open_dm(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateDirect, max_bytes=8 * 1024)
    wanted = {*body.user_ids, who.user_id}
    if len(wanted) > MAX_MEMBERS:
        raise BadRequest(
            f"a direct conversation has at most {MAX_MEMBERS} members",
            details=[{"path": "user_ids", "message": "too many"}],
        )
    found = {row["id"] for row in await dm_store.active_users(app.db, who.org_id, wanted)}
    unknown = sorted(wanted - found)
    if unknown:
        # An unknown id named in the body is a 404 naming the field, as everywhere (docs/api.md).
        raise NotFound(
            "no such member: " + ", ".join(unknown),
            code="unknown_user",
            details=[{"path": "user_ids", "message": f"unknown: {user_id}"} for user_id in unknown],
        )

    def open_(tx: WriteTx) -> tuple[dict[str, Any], bool]:
        return dm_store.find_or_create(tx, who.org_id, sorted(wanted), who.actor)

    channel, created = await app.db.write(open_)
    members = [
        {"id": row["id"], "kind": row["kind"], "name": row["name"], "handle": row["handle"]}
        for row in await dm_store.active_users(app.db, who.org_id, wanted)
    ]
    return JSONResponse(
        {"dm": {**channel, "member": True, "members": sorted(members, key=lambda m: m["name"])}},
        status_code=201 if created else 200,
    )
