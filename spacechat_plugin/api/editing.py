"""Editing and deleting messages, their earlier versions, and reactions (issue 13).

- Only a message's author edits it (as in Slack and Zulip); an agent's streamed reply is the
  agent's and is never edited by people. The earlier versions are kept and readable by whoever
  may read the channel; the message shows `edited_at`.
- The author deletes their own message; `messages:moderate` (owners, admins) deletes anyone's,
  audited. A delete leaves a tombstone in its place.
- Reactions are one emoji per person per kind, live for everyone (`reaction.added|removed`);
  on an agent's reply they also reach the agent (`spacechat_reaction_changed`).
"""

from __future__ import annotations

from typing import Any

import emoji as emoji_data
from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from ..identity.permissions import Principal, check
from ..store import chat as chat_store
from ..store import messages as message_store
from ..store.db import WriteTx
from ..store.shapes import message_in
from .common import JSONResponse, audit_action, authorize, channel_of, operation, read_json, spacechat
from .forward import to_agents_gateway
from .models import EditMessage, React


async def message_or_404(request: Request) -> tuple[Principal, dict[str, Any], dict[str, Any]]:
    """The path's message, its channel, and the caller checked against both (404 before 403)."""
    app = spacechat(request)
    message = await message_store.get_message(app.db, request.path_params["message_id"])
    if message is None:
        raise NotFound("no such message")
    channel = await channel_of(app, message["channel_id"])
    who = await authorize(request, message, channel=channel)
    assert channel is not None
    return who, message, channel


def _writable(message: dict[str, Any]) -> None:
    if message["deleted_at"] is not None:
        raise Conflict("this message was deleted", code="message_deleted")
    if message["state"] != "completed":
        raise Conflict("this message is still being written", code="not_editable")


@operation(
    "Edit your message (its earlier version is kept)",
    tags=["messages"],
    body=EditMessage,
    scope="messages:write",
    resource=True,
)
async def edit_message(request: Request) -> Response:
    app = spacechat(request)
    who, message, _ = await message_or_404(request)
    body = await read_json(request, EditMessage, max_bytes=app.settings.messages.max_body_bytes)
    if message["author"]["id"] != who.user_id or message["author"]["kind"] != who.actor.kind:
        raise Forbidden("only its author can edit a message", code="not_author", details={"scope": "messages:write"})
    if message["metadata"].get("turn_id"):
        raise Forbidden("an agent's streamed reply cannot be edited", code="not_author")
    _writable(message)
    limit = app.settings.messages.max_chars
    if len(body.text) > limit:
        raise BadRequest(
            f"text is longer than {limit} characters", details=[{"path": "text", "message": f"at most {limit}"}]
        )
    if not body.text.strip() and not message["attachments"] and not message["blocks"]:
        raise BadRequest(
            "a message needs text, an attachment or a card; delete it instead",
            details=[{"path": "text", "message": "empty"}],
        )
    if body.text == message["text"]:
        return JSONResponse({"message": message})

    def edit(tx: WriteTx) -> dict[str, Any]:
        current = message_in(tx, message["id"])
        _writable(current)  # still so inside the transaction (a concurrent delete wins)
        return chat_store.edit_message(tx, current, body.text, who.actor)

    return JSONResponse({"message": await app.db.write(edit)})


@operation(
    "Delete a message: yours, or anyone's with messages:moderate (it leaves a tombstone)",
    tags=["messages"],
    scope="messages:write",
    resource=True,
)
async def delete_message(request: Request) -> Response:
    app = spacechat(request)
    who, message, channel = await message_or_404(request)
    own = message["author"]["id"] == who.user_id and message["author"]["kind"] == who.actor.kind
    if not own:
        check(who, "messages:moderate", message, channel=channel)
    if message["deleted_at"] is not None:
        return JSONResponse({"message": message})
    if message["state"] in ("created", "streaming"):
        raise Conflict("this reply is still being written; delete it once it ends", code="not_editable")

    def delete(tx: WriteTx) -> dict[str, Any]:
        tombstone = chat_store.delete_message(tx, message_in(tx, message["id"]), who.actor)
        if not own:
            details = {"author": message["author"], "channel_id": channel["id"]}
            audit_action(tx, request, who, "message.deleted", "message", message["id"], details)
        return tombstone

    return JSONResponse({"message": await app.db.write(delete)})


@operation("A message's earlier versions, oldest first", tags=["messages"], scope="messages:read", resource=True)
async def message_edits(request: Request) -> Response:
    app = spacechat(request)
    _, message, _ = await message_or_404(request)
    return JSONResponse({"message": message, "versions": await chat_store.edit_history(app.db, message["id"])})


def emoji_of(value: str) -> str:
    """One emoji, from itself or its alias (`:thumbsup:`); 400 otherwise."""
    text = value.strip()
    if text.startswith(":") and text.endswith(":") and len(text) > 2:
        text = emoji_data.emojize(text, language="alias")
    if not emoji_data.is_emoji(text):
        raise BadRequest(
            f"{value!r} is not one emoji", code="invalid_emoji", details=[{"path": "emoji", "message": "not an emoji"}]
        )
    return text


async def _where_its_agent_runs(request: Request) -> Response | None:
    """A reaction on an agent's reply reaches that agent (`spacechat_reaction_changed`): with
    several gateways it is made on the one that runs the agents (api/forward.py)."""
    app = spacechat(request)
    if app.runs_agents:
        return None
    message = await message_store.get_message(app.db, request.path_params["message_id"])
    if message is None or message["author"]["kind"] != "agent":
        return None
    return await to_agents_gateway(request)


async def _react(request: Request, emoji: str, *, add: bool) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    app = spacechat(request)
    who, message, channel = await message_or_404(request)
    if message["deleted_at"] is not None:
        raise Conflict("this message was deleted", code="message_deleted")

    def write(tx: WriteTx) -> list[dict[str, Any]] | None:
        try:
            return chat_store.react(tx, message, emoji, who.actor, add=add)
        except chat_store.TooManyReactions:
            raise Unprocessable(
                f"a message takes at most {chat_store.MAX_REACTIONS} different reactions", code="too_many_reactions"
            ) from None

    summary = await app.db.write(write)
    if summary is not None:
        reaction = {
            "message_id": message["id"],
            "channel_id": channel["id"],
            "thread_id": message["thread_id"],
            "emoji": emoji,
            "action": "added" if add else "removed",
            "user": {"kind": who.actor.kind, "id": who.user_id, "name": who.name},
            "agent_id": message["author"]["id"] if message["author"]["kind"] == "agent" else None,
            "reactions": summary,
        }
        app.spawn(
            app.hooks.call("spacechat_reaction_changed", reaction=reaction, message=message),
            name=f"reaction on {message['id']}",
        )
    return message, summary


@operation(
    "React to a message with an emoji", tags=["messages"], body=React, status=201, scope="messages:write", resource=True
)
async def add_reaction(request: Request) -> Response:
    if (forwarded := await _where_its_agent_runs(request)) is not None:
        return forwarded
    body = await read_json(request, React, max_bytes=1024)
    emoji = emoji_of(body.emoji)
    message, summary = await _react(request, emoji, add=True)
    reactions = summary if summary is not None else message["reactions"]
    return JSONResponse({"emoji": emoji, "reactions": reactions}, status_code=201 if summary is not None else 200)


@operation(
    "Take back your reaction (`?emoji=`)",
    tags=["messages"],
    status=204,
    query={"emoji": {"description": "the emoji (or its alias) to take back", "type": "string", "minLength": 1}},
    required_query=("emoji",),
    scope="messages:write",
    resource=True,
)
async def remove_reaction(request: Request) -> Response:
    if (forwarded := await _where_its_agent_runs(request)) is not None:
        return forwarded
    raw = request.query_params.get("emoji")
    if not raw:
        raise BadRequest("say which reaction: ?emoji=", details=[{"path": "emoji", "message": "missing"}])
    await _react(request, emoji_of(raw), add=False)
    return Response(status_code=204)
