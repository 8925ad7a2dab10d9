"""Interactions on cards: `POST /v1/interactions`, and the same from Slack and Discord.

Every interaction is checked against the card it targets; a refused one changes nothing. An
`Idempotency-Key` (or `client_id`) makes a retried click count once. Interactions never expire.

Slack and Discord relays: a connector that shows Context cards in Slack or Discord (Spacebot's
adapters, or any relay holding a Context bot token) forwards the platform's own interaction
payload with the Context message id; it maps into the same `interaction.submitted`. The relay
acts with its bot's scopes, so actions that need a scope (approvals) stay in Context.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..cards import render as cards_render
from ..errors import BadRequest, NotFound
from ..store import messages as message_store
from .common import JSONResponse, authorize, channel_of, operation, principal, read_json, spacechat
from .forward import to_agents_gateway
from .models import KEY_PATTERN, RelayedInteraction, SubmitInteraction

_KEY = re.compile(KEY_PATTERN)


async def message_or_404(request: Request, message_id: str) -> dict[str, Any]:
    app = spacechat(request)
    message = await message_store.get_message(app.db, message_id)
    if message is None:
        raise NotFound("no such message")
    await authorize(request, message, channel=await channel_of(app, message["channel_id"]))
    return message


@operation(
    "Act on a card: click a button, choose, submit a form, vote",
    tags=["interactions"],
    body=SubmitInteraction,
    status=201,
    scope="messages:write",
    resource=True,
)
async def submit(request: Request) -> Response:
    if (forwarded := await to_agents_gateway(request)) is not None:  # several gateways: where the agents run
        return forwarded
    app = spacechat(request)
    body = await read_json(request, SubmitInteraction, max_bytes=64 * 1024)
    key = request.headers.get("idempotency-key") or body.client_id
    if key is not None and not _KEY.match(key):
        raise BadRequest(
            "Idempotency-Key must be 1-128 characters of letters, digits and . _ : ~ -", code="invalid_idempotency_key"
        )
    message = await message_or_404(request, body.message_id)
    status, result = await app.cards.submit(
        await principal(request),
        message,
        action_id=body.action_id,
        block_id=body.block_id,
        values=body.values,
        key=key,
    )
    headers = {"Idempotent-Replayed": "true"} if result.pop("replayed", False) else None
    return JSONResponse(result, status_code=status, headers=headers)


async def _relay(request: Request, connector: str) -> Response:
    if (forwarded := await to_agents_gateway(request)) is not None:  # several gateways: where the agents run
        return forwarded
    app = spacechat(request)
    body = await read_json(request, RelayedInteraction, max_bytes=256 * 1024)
    message = await message_or_404(request, body.message_id)
    mapper = cards_render.interaction_from_slack if connector == "slack" else cards_render.interaction_from_discord
    try:
        mapped = mapper(body.payload)
    except cards_render.CardError as exc:
        raise BadRequest(
            f"the {connector} payload does not map to an interaction", code="invalid_payload", details=exc.details
        ) from None
    status, result = await app.cards.submit(
        await principal(request),
        message,
        action_id=mapped["action_id"],
        block_id=mapped["block_id"],
        values=mapped["values"],
        key=None,
        connector=connector,
        external_user=mapped.get("external_user"),
    )
    return JSONResponse(result, status_code=status)


@operation(
    "Relay a Slack block_actions payload for a Context card",
    tags=["interactions"],
    body=RelayedInteraction,
    status=201,
    scope="messages:write",
    resource=True,
)
async def from_slack(request: Request) -> Response:
    return await _relay(request, "slack")


@operation(
    "Relay a Discord message-component interaction for a Context card",
    tags=["interactions"],
    body=RelayedInteraction,
    status=201,
    scope="messages:write",
    resource=True,
)
async def from_discord(request: Request) -> Response:
    return await _relay(request, "discord")


@operation(
    "A card rendered for a connector: slack (Block Kit), discord (components) or text",
    tags=["interactions"],
    scope="messages:read",
    resource=True,
)
async def render(request: Request) -> Response:
    app = spacechat(request)
    message = await message_store.get_message(app.db, request.path_params["message_id"])
    if message is None:
        raise NotFound("no such message")
    await authorize(request, message, channel=await channel_of(app, message["channel_id"]))
    target = request.path_params["connector"]
    url = f"{app.base_url}/c/{message['channel_id']}/t/{message['thread_id']}?m={message['id']}"
    blocks = message.get("blocks") or []
    state = message.get("card_state") or {}
    if target == "slack":
        return JSONResponse({"blocks": cards_render.render_slack(blocks, state=state, message_url=url)})
    if target == "discord":
        return JSONResponse(cards_render.render_discord(blocks, state=state, message_url=url))
    if target == "text":
        return JSONResponse({"text": cards_render.render_text(blocks, state=state, message_url=url)})
    raise NotFound("connectors are slack, discord and text")
