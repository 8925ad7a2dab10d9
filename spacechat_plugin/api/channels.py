"""Channels, threads and the organisation."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import Conflict, NotFound
from ..identity.auth import client_address
from ..identity.permissions import Principal, can_read_channel
from ..store import audit, identity, tenancy
from ..store import chat as chat_store
from ..store import messages as message_store
from ..store.db import WriteTx
from .common import JSONResponse, authorize, channel_of, operation, principal, query_int, read_json, spacechat
from .models import CreateChannel, MarkRead


async def channel_or_404(request: Request) -> dict[str, Any]:
    app = spacechat(request)
    channel = await channel_of(app, request.path_params["channel_id"])
    if channel is None:
        raise NotFound("no such channel")
    await authorize(request, channel, channel=channel)
    return channel


def with_membership(who: Principal, channel: dict[str, Any]) -> dict[str, Any]:
    return {**channel, "member": channel["id"] in who.channels}


@operation("The caller's organisation and its teams", tags=["channels"], scope="channels:read")
async def get_org(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    org = await tenancy.get_org(app.db, who.org_id)
    teams = await tenancy.list_teams(app.db, who.org_id)
    return JSONResponse({"org": org, "teams": teams})


@operation(
    "List the channels of the organisation (direct conversations are at /v1/dms)",
    tags=["channels"],
    scope="channels:read",
)
async def list_channels(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    channels = await tenancy.list_channels(app.db, who.org_id)
    reads = await message_store.read_state(app.db, who.user_id, who.org_id)
    shown = []
    for channel in channels:
        if channel.get("kind") != "dm" and can_read_channel(who, channel):
            last_read, unread = reads.get(channel["id"], (0, 0))
            shown.append({**with_membership(who, channel), "last_read_seq": last_read, "unread_count": unread})
    return JSONResponse({"channels": shown, "unread_cap": message_store.UNREAD_CAP})


@operation(
    "Mark a channel read up to a message's seq (markers only move forward)",
    tags=["channels"],
    body=MarkRead,
    scope="messages:read",
    resource=True,
)
async def mark_read(request: Request) -> Response:
    app = spacechat(request)
    channel = await channel_or_404(request)
    who = await principal(request)
    body = await read_json(request, MarkRead, max_bytes=1024)
    seq = min(body.seq, await app.newest_seq(body.seq))
    marker = await app.db.write(lambda tx: message_store.mark_read(tx, who.user_id, channel["id"], seq), light=True)
    return JSONResponse({"channel_id": channel["id"], "last_read_seq": marker})


@operation("Create a channel", tags=["channels"], body=CreateChannel, status=201, scope="channels:manage")
async def create_channel(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateChannel, max_bytes=app.settings.messages.max_body_bytes)
    teams = await tenancy.list_teams(app.db, who.org_id)
    team = next((t for t in teams if t["id"] == body.team_id), None) if body.team_id else teams[0]
    if team is None:
        raise NotFound("no such team", details=[{"path": "team_id", "message": "unknown team"}])

    def create(tx: WriteTx) -> dict[str, Any]:
        if tenancy.channel_name_taken(tx, who.org_id, body.name):
            raise Conflict(f"a channel named {body.name} already exists", code="name_taken")
        channel = tenancy.create_channel(
            tx,
            org_id=who.org_id,
            team_id=team["id"],
            name=body.name,
            actor=who.actor,
            category=body.category,
            topic=body.topic,
            private=body.private,
        )
        identity.add_member(tx, channel, who.user_id, who.actor)
        audit.append(
            tx,
            org_id=who.org_id,
            actor=who.actor,
            action="channel.created",
            target_type="channel",
            target_id=channel["id"],
            ip=client_address(request),
            details={"name": body.name, "private": body.private},
        )
        return channel

    channel = await app.db.write(create)
    return JSONResponse({"channel": with_membership(who, channel)}, status_code=201)


@operation("Get a channel", tags=["channels"], scope="channels:read", resource=True)
async def get_channel(request: Request) -> Response:
    channel = await channel_or_404(request)
    fresh = await tenancy.get_channel(spacechat(request).db, channel["id"])  # the cache's last_seq lags
    return JSONResponse({"channel": with_membership(await principal(request), fresh or channel)})


@operation(
    "List a channel's threads, most recently active first",
    tags=["threads"],
    scope="messages:read",
    query={"before": "cursor from `next_before`", "limit": "1-200, default 50"},
    resource=True,
)
async def list_threads(request: Request) -> Response:
    channel = await channel_or_404(request)
    before = query_int(request, "before", None)
    limit = query_int(request, "limit", 50, low=1, high=200)
    assert limit is not None
    db = spacechat(request).db
    threads, next_before = await message_store.list_threads(db, channel["id"], before=before, limit=limit)
    # Each thread with the caller's own read marker and unread count (the list's unread state).
    reads = await chat_store.thread_unreads(db, (await principal(request)).user_id, [t["id"] for t in threads])
    for thread in threads:
        thread["last_read_seq"], thread["unread_count"] = reads.get(thread["id"], (0, 0))
    return JSONResponse({"threads": threads, "next_before": None if next_before is None else str(next_before)})
