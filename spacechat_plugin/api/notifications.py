"""Notification levels, presence and typing (issue 13).

Levels are a person's own, per channel; presence and typing are live state (presence/): the
routes record what a page reports, and the realtime stream carries what changed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound
from ..notifications.rule import DEFAULT_LEVEL
from ..presence.service import REPORT as PRESENCE_REPORT
from ..store import messages as message_store
from .channels import channel_or_404
from .common import JSONResponse, operation, principal, read_json, spacechat
from .models import NotificationLevel, ReportPresence, Typing


@operation("Your notification levels (channels not listed have the default)", tags=["notifications"], scope="any")
async def my_levels(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    levels = {
        channel_id: level
        for channel_id, level in app.notifications.levels(who.user_id).items()
        if channel_id in app.access.channels and app.access.channels[channel_id]["org_id"] == who.org_id
    }
    return JSONResponse({"default": DEFAULT_LEVEL, "levels": levels})


@operation(
    "Set your notification level for a channel",
    tags=["notifications"],
    body=NotificationLevel,
    scope="channels:read",
    resource=True,
)
async def set_level(request: Request) -> Response:
    app = spacechat(request)
    channel = await channel_or_404(request)
    who = await principal(request)
    body = await read_json(request, NotificationLevel, max_bytes=1024)
    level = await app.notifications.set_level(who.user_id, channel["id"], body.level)
    return JSONResponse({"channel_id": channel["id"], "level": level})


@operation("Who is active now (everyone else is away)", tags=["notifications"], scope="members:read")
async def presence(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    if app.relay is not None and app.settings.bus.read_wait_ms:
        # Presence is not in the log: the others are asked to answer after what they shared, so
        # whatever a stream was told on another gateway (or worker) is in this answer too.
        await app.relay.synced(within=min(app.settings.bus.read_wait_ms, 500) / 1000)
    return JSONResponse({"users": app.presence.snapshot(who.org_id)})


@operation(
    "Say whether this page is in use (active) or hidden/idle (away)",
    tags=["notifications"],
    body=ReportPresence,
    scope="realtime:subscribe",
)
async def report_presence(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, ReportPresence, max_bytes=1024)
    credential = who.credential_id or who.credential
    status = app.presence.report(who.user_id, who.org_id, credential, body.status)
    if app.relay is not None:  # the page's stream may be open on another gateway (or worker)
        data = {"user_id": who.user_id, "org_id": who.org_id, "credential": credential, "status": body.status}
        app.relay.control(PRESENCE_REPORT, data)
    return JSONResponse({"status": status})


@operation(
    "Say you are typing in a channel's thread (or a new thread); repeat every few seconds while typing",
    tags=["notifications"],
    body=Typing,
    status=204,
    scope="messages:write",
    resource=True,
)
async def typing(request: Request) -> Response:
    app = spacechat(request)
    channel = await channel_or_404(request)
    who = await principal(request)
    body = await read_json(request, Typing, max_bytes=1024)
    if body.thread_id is not None:
        thread = await message_store.get_thread(app.db, body.thread_id)
        if thread is None or thread["channel_id"] != channel["id"]:
            raise NotFound("no such thread in this channel")
    app.presence.typing(who.user_id, channel, body.thread_id, body.typing)
    return Response(status_code=204)
