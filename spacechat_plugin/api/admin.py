"""The organisation's structure: teams, channel settings and memberships, new organisations,
and the audit log. Every change is audited in the same transaction that makes it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import Conflict, Forbidden, NotFound
from ..identity.permissions import INSTANCE, Principal, check
from ..store import audit, identity, tenancy
from ..store.db import WriteTx
from .channels import channel_or_404
from .common import (
    JSONResponse,
    audit_action,
    authorize,
    channel_of,
    operation,
    principal,
    query_int,
    read_json,
    spacechat,
    time_param,
)
from .dms import refuse_direct
from .models import AddMember, CreateOrg, CreateTeam, UpdateChannel


async def _channel(request: Request) -> tuple[Principal, dict[str, Any]]:
    channel = await channel_or_404(request)
    return await principal(request), channel


# --- teams ---------------------------------------------------------------------------------


@operation("Teams of the organisation", tags=["channels"], scope="channels:read")
async def list_teams(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"teams": await tenancy.list_teams(app.db, who.org_id)})


@operation("Create a team", tags=["channels"], body=CreateTeam, status=201, scope="channels:manage")
async def create_team(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateTeam, max_bytes=8 * 1024)

    def create(tx: WriteTx) -> dict[str, Any]:
        if tenancy.team_name_taken(tx, who.org_id, body.name):
            raise Conflict(f"a team named {body.name} already exists", code="name_taken")
        team = tenancy.create_team(tx, who.org_id, body.name)
        identity.emit_team_created(tx, team, who.actor)
        audit_action(tx, request, who, "team.created", "team", team["id"], {"name": body.name})
        return team

    return JSONResponse({"team": await app.db.write(create)}, status_code=201)


# --- channels ------------------------------------------------------------------------------


@operation(
    "Change a channel's name, topic, category or archive state",
    tags=["channels"],
    body=UpdateChannel,
    scope="channels:manage",
    resource=True,
)
async def update_channel(request: Request) -> Response:
    app = spacechat(request)
    who, channel = await _channel(request)
    body = await read_json(request, UpdateChannel, max_bytes=8 * 1024)
    refuse_direct(channel, "renamed or archived")
    changes = body.model_dump(exclude_none=True)

    def update(tx: WriteTx) -> dict[str, Any]:
        if (
            "name" in changes
            and changes["name"] != channel["name"]
            and tenancy.channel_name_taken(tx, who.org_id, changes["name"])
        ):
            raise Conflict(f"a channel named {changes['name']} already exists", code="name_taken")
        updated = tenancy.update_channel(tx, channel["id"], changes, who.actor)
        audit_action(tx, request, who, "channel.updated", "channel", channel["id"], changes)
        return updated

    return JSONResponse({"channel": await app.db.write(update)})


@operation("A channel's members", tags=["channels"], scope="channels:read", resource=True)
async def list_members(request: Request) -> Response:
    app = spacechat(request)
    _, channel = await _channel(request)
    return JSONResponse({"members": await identity.channel_members(app.db, channel["id"])})


@operation(
    "Add a member to a channel", tags=["channels"], body=AddMember, status=201, scope="channels:manage", resource=True
)
async def add_member(request: Request) -> Response:
    app = spacechat(request)
    who, channel = await _channel(request)
    body = await read_json(request, AddMember, max_bytes=8 * 1024)
    refuse_direct(channel, "joined")
    user = await identity.get_user(app.db, body.user_id)
    if user is None or user["org_id"] != who.org_id or user["deactivated"]:
        raise NotFound("no such member", code="unknown_user", details=[{"path": "user_id", "message": "unknown"}])

    def add(tx: WriteTx) -> bool:
        added = identity.add_member(tx, channel, user["id"], who.actor)
        if added:
            audit_action(tx, request, who, "channel.member_added", "channel", channel["id"], {"user_id": user["id"]})
        return added

    added = await app.db.write(add)
    return JSONResponse({"added": added, "user": user}, status_code=201 if added else 200)


@operation(
    "Remove a member from a channel (anyone may remove themselves)",
    tags=["channels"],
    status=204,
    scope="channels:manage",
    resource=True,  # leaving a channel yourself needs only channels:read (checked below)
)
async def remove_member(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    channel = await channel_of(app, request.path_params["channel_id"])
    if channel is None:
        raise NotFound("no such channel")
    user_id = request.path_params["user_id"]
    check(who, "channels:read" if user_id == who.user_id else "channels:manage", channel, channel=channel)
    refuse_direct(channel, "left")

    def remove(tx: WriteTx) -> None:
        if identity.remove_member(tx, channel, user_id, who.actor):
            audit_action(tx, request, who, "channel.member_removed", "channel", channel["id"], {"user_id": user_id})

    await app.db.write(remove)
    return Response(status_code=204)


@operation("Join a public channel", tags=["channels"], scope="channels:join", resource=True)
async def join_channel(request: Request) -> Response:
    app = spacechat(request)
    who, channel = await _channel(request)
    if channel["private"]:
        raise Forbidden("private channels are joined by invitation", code="private_channel")
    joined = await app.db.write(lambda tx: identity.add_member(tx, channel, who.user_id, who.actor))
    return JSONResponse({"joined": joined, "channel": channel})


# --- organisations -------------------------------------------------------------------------


@operation(
    "Create an organisation (instance owner only); returns its owner's one-time setup link",
    tags=["admin"],
    body=CreateOrg,
    status=201,
    scope="org:admin",
    resource=True,
)
async def create_org(request: Request) -> Response:
    app = spacechat(request)
    # A new organisation is the instance's business: the instance role, not an owner as such.
    who = await authorize(request, INSTANCE)
    body = await read_json(request, CreateOrg, max_bytes=8 * 1024)

    def create(tx: WriteTx) -> tuple[dict[str, Any], str]:
        org = tenancy.create_org(tx, body.name)
        team = tenancy.create_team(tx, org["id"], "General")
        tenancy.create_channel(tx, org_id=org["id"], team_id=team["id"], name="general", actor=who.actor)
        secret = identity.create_setup_token(tx, org["id"], instance_admin=False)
        audit_action(tx, request, who, "org.created", "org", org["id"], {"name": body.name})
        return org, secret

    org, secret = await app.db.write(create)
    return JSONResponse(
        {"org": org, "setup_link": f"{app.base_url}/setup#token={secret}", "setup_token": secret}, status_code=201
    )


# --- audit ---------------------------------------------------------------------------------


@operation(
    "The audit log, newest first",
    tags=["admin"],
    scope="audit:read",
    query={
        "actor": "an actor id",
        "action": "an action (`auth.login`), or a prefix ending in '.' (`auth.`)",
        "since": "RFC 3339 time (inclusive)",
        "until": "RFC 3339 time (exclusive)",
        "before": "an audit row id, for the next page",
        "limit": "1-500, default 100",
    },
)
async def audit_log(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    params = request.query_params
    since, until = time_param(params.get("since"), "since"), time_param(params.get("until"), "until")
    limit = query_int(request, "limit", 100, low=1, high=500)
    assert limit is not None
    rows = await audit.query(
        app.db,
        org_id=who.org_id,
        actor_id=params.get("actor"),
        action=params.get("action"),
        since=since,
        until=until,
        before=query_int(request, "before", None),
        limit=limit,
    )
    return JSONResponse({"entries": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None})
