"""Posting messages and reading threads.

Sends are idempotent (docs/api.md): an `Idempotency-Key` header or a `client_msg_id` in the
body. The same key from the same actor within 24 hours returns the original answer with
`Idempotent-Replayed: true`; while the first send with a key is still in progress, a duplicate
gets 409 (as Stripe and Zulip do); a key reused for a different request gets 422.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..agents.replies import turn_input
from ..cards import validate as cards
from ..cards.service import check_card, initial_state
from ..config import MessagesConfig
from ..errors import BadRequest, Conflict, NotFound
from ..identity.permissions import Principal
from ..store import audit
from ..store import chat as chat_store
from ..store import messages as message_store
from ..store.db import WriteTx
from .channels import channel_or_404
from .common import JSONResponse, authorize, channel_of, operation, principal, query_int, read_json, spacechat
from .context import Context
from .forward import address_of, to_agents_gateway
from .models import KEY_PATTERN, PostMessage

_KEY = re.compile(KEY_PATTERN)


def mentions(text: str) -> list[str]:
    return chat_store.mention_names(text)


def _idempotency_key(request: Request, body: PostMessage) -> str | None:
    header = request.headers.get("idempotency-key")
    if header is not None and not _KEY.match(header):
        raise BadRequest(
            "Idempotency-Key must be 1-128 characters of letters, digits and . _ : ~ -",
            code="invalid_idempotency_key",
        )
    if header is not None and body.client_msg_id is not None and header != body.client_msg_id:
        raise BadRequest("Idempotency-Key and client_msg_id differ; send one of them", code="invalid_idempotency_key")
    return header or body.client_msg_id


def _checked_body(body: PostMessage, limits: MessagesConfig) -> list[dict[str, Any]] | None:
    """Refuse what no message may be (too long, empty, too many files, a bad card); the
    validated card's blocks, if any."""
    if len(body.text) > limits.max_chars:
        raise BadRequest(
            f"text is longer than {limits.max_chars} characters",
            code="invalid_request",
            details=[{"path": "text", "message": f"at most {limits.max_chars} characters"}],
        )
    blocks = None
    if body.blocks is not None:
        try:
            blocks = check_card(body.blocks)
        except cards.CardError as exc:
            raise BadRequest(
                f"the card is not valid: {exc.details[0]['path']}: {exc.details[0]['message']}",
                code="invalid_card",
                details=exc.details,
            ) from None
    if not body.text.strip() and not body.attachments and not blocks:
        raise BadRequest(
            "a message needs text, an attachment or a card",
            code="invalid_request",
            details=[{"path": "text", "message": "empty"}],
        )
    if len(body.attachments) > limits.max_attachments:
        raise BadRequest(
            f"at most {limits.max_attachments} attachments per message",
            code="invalid_request",
            details=[{"path": "attachments", "message": "too many"}],
        )
    return blocks


async def _write_claimed(
    app: Context, write: Callable[[WriteTx], message_store.PostResult], claim: message_store.IdempotencyClaim | None
) -> message_store.PostResult:
    """The send's write. With several gateways a keyed send marks its key in progress first, in
    the database, where every gateway sees it (`inflight_keys` is this process's only). A send
    is a light write (store/db.py): a few statements on a few rows."""
    if claim is None or app.relay is None:
        return await app.db.write(write, light=True)
    await app.db.write(lambda tx: message_store.reserve_claim(tx, claim), light=True)
    try:
        return await app.db.write(write, light=True)
    except BaseException:
        with contextlib.suppress(Exception):
            await app.db.write(lambda tx: message_store.release_claim(tx, claim))
        raise


async def _post(request: Request, who: Principal, channel: dict[str, Any], thread_id: str | None) -> Response:
    app = spacechat(request)
    body = await read_json(request, PostMessage, max_bytes=app.settings.messages.max_body_bytes)
    blocks = _checked_body(body, app.settings.messages)
    key = _idempotency_key(request, body)
    claim = None
    actor_id = who.actor.id or ""
    if key is not None:
        target = thread_id or channel["id"]
        request_shape = body.model_dump(exclude={"client_msg_id"})
        claim = message_store.IdempotencyClaim(actor_id, key, message_store.fingerprint(target, request_shape))
        if (actor_id, key) in app.inflight_keys:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry it later",
                code="idempotency_key_in_use",
            )
        app.inflight_keys.add((actor_id, key))

    def write(tx: WriteTx) -> message_store.PostResult:
        return message_store.post_message(
            tx,
            actor=who.actor,
            channel=channel,
            thread_id=thread_id,
            text=body.text,
            fmt=body.format,
            attachments=body.attachments,
            blocks=blocks,
            card_state=initial_state(blocks),
            client_msg_id=body.client_msg_id,
            claim=claim,
            mentions=mentions(body.text),
        )

    try:
        result = await _write_claimed(app, write, claim)
    finally:
        if key is not None:
            app.inflight_keys.discard((actor_id, key))
    if not result.replayed and app.host is not None and who.actor.kind == "user":
        message = {**result.message, "author": {**result.message["author"], "name": who.name}}
        app.hand_to_agents(channel, result.thread["id"], message, mentions(body.text))
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return JSONResponse(
        {"message": result.message, "thread": result.thread}, status_code=result.status, headers=headers
    )


@operation(
    "Post a top-level message in a channel (it opens a thread)",
    tags=["messages"],
    body=PostMessage,
    status=201,
    scope="messages:write",
    resource=True,
)
async def post_to_channel(request: Request) -> Response:
    channel = await channel_or_404(request)
    return await _post(request, await principal(request), channel, None)


async def thread_or_404(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
    app = spacechat(request)
    thread = await message_store.get_thread(app.db, request.path_params["thread_id"])
    if thread is None:
        raise NotFound("no such thread")
    channel = await channel_of(app, thread["channel_id"])
    assert channel is not None
    await authorize(request, channel, channel=channel)
    return thread, channel


@operation("Reply in a thread", tags=["messages"], body=PostMessage, status=201, scope="messages:write", resource=True)
async def post_to_thread(request: Request) -> Response:
    thread, channel = await thread_or_404(request)
    return await _post(request, await principal(request), channel, thread["id"])


@operation("Get a thread", tags=["threads"], scope="messages:read", resource=True)
async def get_thread(request: Request) -> Response:
    thread, _ = await thread_or_404(request)
    root = await message_store.get_message(spacechat(request).db, thread["root_message_id"])
    return JSONResponse({"thread": thread, "root": root})


@operation(
    "A page of a thread's messages, oldest first",
    tags=["threads"],
    scope="messages:read",
    query={
        "before": "cursor: messages older than this (from `cursors.before`)",
        "after": "cursor: messages newer than this (from `cursors.after`)",
        "around": "a message's seq or id: that message with older and newer ones either side (deep links)",
        "limit": "1-200, default 50",
    },
    resource=True,
)
async def history(request: Request) -> Response:
    thread, _ = await thread_or_404(request)
    before = query_int(request, "before", None)
    after = query_int(request, "after", None)
    raw_around = request.query_params.get("around", "")
    if raw_around.startswith("msg_"):  # a message id: its place in the thread
        target = await message_store.get_message(spacechat(request).db, raw_around)
        if target is None or target["thread_id"] != thread["id"]:
            raise NotFound("no such message in this thread")
        around: int | None = int(target["seq"])
    else:
        around = query_int(request, "around", None)
    if sum(cursor is not None for cursor in (before, after, around)) > 1:
        raise BadRequest("send one of before, after and around")
    limit = query_int(request, "limit", 50, low=1, high=200)
    assert limit is not None
    page = await message_store.history(
        spacechat(request).db, thread["id"], before=before, after=after, limit=limit, around=around
    )
    return JSONResponse(
        {
            "thread": thread,
            "messages": page.messages,
            "cursors": {
                "before": None if page.older is None else str(page.older),
                "after": None if page.newer is None else str(page.newer),
            },
        }
    )


@operation("Get a message", tags=["messages"], scope="messages:read", resource=True)
async def get_message(request: Request) -> Response:
    app = spacechat(request)
    message = await message_store.get_message(app.db, request.path_params["message_id"])
    if message is None:
        raise NotFound("no such message")
    await authorize(request, message, channel=await channel_of(app, message["channel_id"]))
    return JSONResponse({"message": message})


@operation(
    "Run the agent turn that produced a failed reply again (the failed reply is marked superseded)",
    tags=["messages"],
    status=202,
    scope="messages:write",
    resource=True,
)
async def retry_reply(request: Request) -> Response:
    if (forwarded := await to_agents_gateway(request)) is not None:  # several gateways: where the agents run
        return forwarded
    app = spacechat(request)
    who = await principal(request)
    message = await message_store.get_message(app.db, request.path_params["message_id"])
    if message is None:
        raise NotFound("no such message")
    await authorize(request, message, channel=await channel_of(app, message["channel_id"]))
    if message["author"]["kind"] != "agent" or message["state"] != "failed":
        raise Conflict("only a failed agent reply can be retried", code="not_retryable")
    if message["metadata"].get("superseded_by_turn"):
        raise Conflict("this reply was already retried", code="already_retried")
    if app.host is None:
        raise Conflict("no agent host is running", code="no_host")
    try:
        result = await app.host.retry_turn(
            channel_id=message["channel_id"], thread_id=message["thread_id"], **await turn_input(app.db, message)
        )
    except LookupError:
        raise Conflict(
            "the agent has no turn to run again here (it may have restarted)", code="not_retryable"
        ) from None
    metadata = {**message["metadata"], "superseded_by_turn": result["turn_id"]}

    def supersede(tx: WriteTx) -> dict[str, Any] | None:
        audit.append(
            tx,
            org_id=who.org_id,
            actor=who.actor,
            action="agent.turn_retried",
            target_type="message",
            target_id=message["id"],
            ip=address_of(request),
            details={"turn_id": result["turn_id"]},
        )
        return message_store.update_message(tx, message["id"], metadata=metadata)

    updated = await app.db.write(supersede)
    return JSONResponse({"message": updated, "turn_id": result["turn_id"]}, status_code=202)
