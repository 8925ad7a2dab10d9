"""People: the caller (me, devices), members and roles, API tokens, bots and invitations.

Every change here is audited in the same transaction that makes it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..identity.auth import hash_password, verify_password
from ..identity.permissions import (
    ROLE_SCOPES,
    SCOPES,
    Principal,
    check_deactivation,
    check_invitable,
    check_role_change,
)
from ..store import identity
from ..store import messages as message_store
from ..store.db import WriteTx
from .attachments import attachment_path
from .auth import require_good_password
from .common import JSONResponse, audit_action, authorize, channel_of, operation, principal, read_json, spacechat
from .models import ChangeRole, CreateBot, CreateInvitation, CreateToken, UpdateMe


async def _user_or_404(request: Request) -> tuple[Principal, dict[str, Any]]:
    app = spacechat(request)
    who = await principal(request)
    user = await identity.get_user(app.db, request.path_params["user_id"])
    if user is None:
        raise NotFound("no such user")
    await authorize(request, user)
    return who, user


# --- me ------------------------------------------------------------------------------------


@operation("The caller: user, role, scopes (and, for a browser session, its CSRF token)", tags=["auth"], scope="any")
async def me(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    assert app.auth is not None
    user = await identity.get_user(app.db, who.user_id)
    body: dict[str, Any] = {
        "user": user,
        "actor": {"kind": who.actor.kind, "id": who.actor.id},
        "org_id": who.org_id,
        "role": who.role,
        "scopes": sorted(who.scopes),
        "credential": who.credential,
        "instance_admin": who.instance_admin,
        # Where the event log stands now: fetch, then subscribe with ?after=seq, and nothing is missed.
        "seq": app.db.last_seq,
    }
    if who.credential == "session" and who.credential_id:
        body["csrf_token"] = app.auth.csrf_token(who.credential_id)
        body["session_id"] = who.credential_id
    return JSONResponse(body)


AVATAR_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
AVATAR_MAX_BYTES = 2 * 1024 * 1024


async def _avatar(app: Any, who: Principal, attachment_id: str | None) -> str | None:
    """Check that a new picture is an image the caller uploaded (400 otherwise)."""
    if attachment_id is None:
        return None
    row = await message_store.get_attachment(app.db, attachment_id)
    if row is None or row["org_id"] != who.org_id or row["uploader_id"] != who.user_id:
        # An unknown id named in the body is a 404 naming the field, as everywhere (docs/api.md).
        raise NotFound("no such upload of yours", details=[{"path": "avatar_id", "message": "unknown"}])
    problem = None
    if row["content_type"] not in AVATAR_TYPES:
        problem = f"a picture must be one of {', '.join(AVATAR_TYPES)}"
    elif row["size"] > AVATAR_MAX_BYTES:
        problem = f"a picture is at most {AVATAR_MAX_BYTES // (1024 * 1024)} MB"
    if problem is not None:
        raise BadRequest(problem, code="invalid_request", details=[{"path": "avatar_id", "message": problem}])
    return attachment_id


@operation("Change your name, picture or password", tags=["auth"], body=UpdateMe, scope="any")
async def update_me(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, UpdateMe, max_bytes=64 * 1024)
    picture = await _avatar(app, who, body.avatar_id)
    new_hash = None
    if body.password is not None:
        row = await identity.login_of(app.db, who.user_id)
        if row is None or not await verify_password(row["password_hash"], body.current_password or ""):
            raise Forbidden("the current password is wrong", code="wrong_password")
        require_good_password(body.password, row["email"] or "", app.settings.auth.password_min_length)
        new_hash = await hash_password(body.password)
    keep = who.credential_id if who.credential == "session" else None

    def change(tx: WriteTx) -> dict[str, Any]:
        if body.name is not None:
            identity.rename(tx, who.user_id, body.name)
        if "avatar_id" in body.model_fields_set:
            identity.set_avatar(tx, who.user_id, picture)
        if new_hash is not None:
            identity.set_password(tx, who.user_id, new_hash, keep)
            audit_action(tx, request, who, "auth.password_changed", "user", who.user_id)
            # The other devices are signed out: their streams end too.
            identity.access_ended(tx, who.org_id, who.actor, [who.user_id])
        if body.name is not None or "avatar_id" in body.model_fields_set:
            return identity.profile_changed(tx, who.user_id, who.actor)
        return identity.user_json(identity.user_row(tx, who.user_id))

    user = await app.db.write(change)
    return JSONResponse({"user": user})


@operation("Your devices (sessions)", tags=["auth"], scope="any")
async def my_sessions(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    current = who.credential_id if who.credential == "session" else None
    rows = await identity.list_sessions(app.db, who.user_id)
    return JSONResponse({"sessions": [identity.session_json(row, current) for row in rows]})


async def _revoke_session(request: Request, who: Principal, session: Any) -> Response:
    app = spacechat(request)
    session_id = session["id"]

    def revoke(tx: WriteTx) -> None:
        identity.revoke_session(tx, session_id, who.user_id)
        audit_action(tx, request, who, "auth.session_revoked", "session", session_id, {"user_id": session["user_id"]})
        identity.access_ended(tx, who.org_id, who.actor, [session_id])

    await app.db.write(revoke)
    return Response(status_code=204)


@operation("Sign out one of your devices", tags=["auth"], status=204, scope="any")
async def revoke_my_session(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    session = await identity.get_session(app.db, request.path_params["session_id"])
    if session is None or session["user_id"] != who.user_id:
        raise NotFound("no such session")
    return await _revoke_session(request, who, session)


# --- members -------------------------------------------------------------------------------


@operation("The organisation's members (people, bots and agents)", tags=["members"], scope="members:read")
async def list_users(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"users": await identity.list_users(app.db, who.org_id)})


@operation("A member", tags=["members"], scope="members:read", resource=True)
async def get_user(request: Request) -> Response:
    _, user = await _user_or_404(request)
    return JSONResponse({"user": user})


@operation(
    "A member's picture (404 when they have none)",
    tags=["members"],
    scope="members:read",
    resource=True,
    produces="image/*",
)
async def avatar(request: Request) -> Response:
    app = spacechat(request)
    _, user = await _user_or_404(request)
    row = await identity.avatar_of(app.db, user["id"])
    path = attachment_path(app.files_dir / "attachments", row["id"]) if row is not None else None
    if row is None or path is None or not path.exists():
        raise NotFound("no picture")
    return FileResponse(
        path,
        media_type=row["content_type"],
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=31536000, immutable",  # the URL names the picture
        },
    )


@operation("Change a member's role", tags=["members"], body=ChangeRole, scope="members:manage", resource=True)
async def change_role(request: Request) -> Response:
    app = spacechat(request)
    who, user = await _user_or_404(request)
    body = await read_json(request, ChangeRole, max_bytes=8 * 1024)
    check_role_change(who, user, body.role)

    def change(tx: WriteTx) -> dict[str, Any]:
        if user["role"] == "owner" and body.role != "owner" and identity.owners_left(tx, who.org_id) <= 1:
            raise Conflict("the organisation needs at least one owner", code="last_owner")
        changed = identity.set_role(tx, user["id"], body.role, who.actor)
        audit_action(
            tx, request, who, "member.role_changed", "user", user["id"], {"from": user["role"], "to": body.role}
        )
        # The new role's scopes apply to their streams from the reconnect.
        identity.access_ended(tx, who.org_id, who.actor, [user["id"]])
        return changed

    changed = await app.db.write(change)
    return JSONResponse({"user": changed})


@operation(
    "Deactivate a member: sessions and tokens end at once", tags=["members"], scope="members:manage", resource=True
)
async def deactivate_user(request: Request) -> Response:
    app = spacechat(request)
    who, user = await _user_or_404(request)
    check_deactivation(who, user)

    def deactivate(tx: WriteTx) -> dict[str, Any]:
        if user["role"] == "owner" and identity.owners_left(tx, who.org_id) <= 1:
            raise Conflict("the organisation needs at least one owner", code="last_owner")
        changed, credentials = identity.deactivate(tx, user["id"], who.actor)
        audit_action(tx, request, who, "member.deactivated", "user", user["id"])
        identity.access_ended(tx, who.org_id, who.actor, credentials)
        return changed

    changed = await app.db.write(deactivate)
    return JSONResponse({"user": changed})


@operation("A member's sessions", tags=["members"], scope="members:manage", resource=True)
async def user_sessions(request: Request) -> Response:
    app = spacechat(request)
    _, user = await _user_or_404(request)
    rows = await identity.list_sessions(app.db, user["id"])
    return JSONResponse({"sessions": [identity.session_json(row) for row in rows]})


@operation("End anyone's session (admins)", tags=["members"], status=204, scope="members:manage", resource=True)
async def revoke_session(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    session = await identity.get_session(app.db, request.path_params["session_id"])
    if session is None:
        raise NotFound("no such session")
    await authorize(request, dict(session))
    return await _revoke_session(request, who, session)


# --- API tokens and bots -------------------------------------------------------------------


def _scopes(who: Principal, requested: list[str]) -> list[str]:
    unknown = sorted(set(requested) - set(SCOPES))
    if unknown:
        raise BadRequest(
            f"unknown scopes: {', '.join(unknown)}",
            code="invalid_request",
            details=[{"path": "scopes", "message": f"unknown: {', '.join(unknown)}"}],
        )
    beyond = sorted(set(requested) - who.scopes)
    if beyond:
        raise Forbidden(f"you cannot grant scopes you do not hold: {', '.join(beyond)}", code="scope_not_held")
    return sorted(set(requested))


@operation("Your API tokens", tags=["tokens"], scope="tokens:create")
async def list_tokens(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"tokens": await identity.list_tokens(app.db, who.user_id)})


@operation(
    "Create an API token (the secret is shown once)",
    tags=["tokens"],
    body=CreateToken,
    status=201,
    scope="tokens:create",
)
async def create_token(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateToken, max_bytes=16 * 1024)
    scopes = _scopes(who, body.scopes)
    expires = identity.later(days=body.expires_in_days) if body.expires_in_days else None

    def create(tx: WriteTx) -> tuple[str, dict[str, Any]]:
        secret, token = identity.create_token(
            tx,
            org_id=who.org_id,
            user_id=who.user_id,
            name=body.name,
            scopes=scopes,
            expires_at=expires,
            created_by=who.user_id,
        )
        audit_action(
            tx, request, who, "auth.token_created", "token", token["id"], {"name": body.name, "scopes": scopes}
        )
        return secret, token

    secret, token = await app.db.write(create)
    return JSONResponse({"token": token, "secret": secret}, status_code=201)


@operation(
    "Revoke an API token (your own; admins: anyone's)",
    tags=["tokens"],
    status=204,
    scope="members:manage",
    resource=True,
)
async def revoke_token(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    row = await identity.get_token(app.db, request.path_params["token_id"])
    if row is None or row["org_id"] != who.org_id:
        raise NotFound("no such token")
    if row["user_id"] != who.user_id:
        await authorize(request, dict(row))
    token_id = row["id"]

    def revoke(tx: WriteTx) -> None:
        identity.revoke_token(tx, token_id)
        audit_action(tx, request, who, "auth.token_revoked", "token", token_id, {"user_id": row["user_id"]})
        identity.access_ended(tx, who.org_id, who.actor, [token_id])

    await app.db.write(revoke)
    return Response(status_code=204)


@operation(
    "Create a bot: an identity of kind agent with an API token (shown once)",
    tags=["tokens"],
    body=CreateBot,
    status=201,
    scope="members:manage",
)
async def create_bot(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateBot, max_bytes=16 * 1024)
    scopes = sorted(ROLE_SCOPES["agent"] if body.scopes is None else set(body.scopes))
    unknown = set(scopes) - ROLE_SCOPES["agent"]
    if unknown:
        raise BadRequest(
            f"a bot can hold only the agent role's scopes, not {', '.join(sorted(unknown))}",
            code="invalid_request",
            details=[{"path": "scopes", "message": "beyond the agent role"}],
        )
    expires = identity.later(days=body.expires_in_days) if body.expires_in_days else None

    def create(tx: WriteTx) -> tuple[dict[str, Any], str, dict[str, Any]]:
        bot = identity.create_user(tx, org_id=who.org_id, kind="agent", name=body.name, role="agent", actor=who.actor)
        secret, token = identity.create_token(
            tx,
            org_id=who.org_id,
            user_id=bot["id"],
            name=f"{body.name} token",
            scopes=scopes,
            expires_at=expires,
            created_by=who.user_id,
        )
        audit_action(tx, request, who, "member.bot_created", "user", bot["id"], {"name": body.name, "scopes": scopes})
        audit_action(tx, request, who, "auth.token_created", "token", token["id"], {"user_id": bot["id"]})
        return bot, secret, token

    bot, secret, token = await app.db.write(create)
    return JSONResponse({"user": bot, "token": token, "secret": secret}, status_code=201)


# --- invitations ---------------------------------------------------------------------------


@operation("Invitations", tags=["members"], scope="members:manage")
async def list_invitations(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"invitations": await identity.list_invitations(app.db, who.org_id)})


@operation(
    "Invite someone by link, with a role and an expiry (the link is shown once)",
    tags=["members"],
    body=CreateInvitation,
    status=201,
    scope="members:manage",
)
async def create_invitation(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, CreateInvitation, max_bytes=16 * 1024)
    check_invitable(who, body.role)
    for channel_id in body.channel_ids:
        channel = await channel_of(app, channel_id)
        if channel is None:
            raise NotFound(f"no such channel {channel_id}", details=[{"path": "channel_ids", "message": "unknown"}])
        await authorize(request, channel, channel=channel)  # each channel must be this organisation's
    hours = body.expires_in_hours or app.settings.auth.invitation_hours

    def create(tx: WriteTx) -> tuple[str, dict[str, Any]]:
        secret, invitation = identity.create_invitation(
            tx,
            org_id=who.org_id,
            role=body.role,
            email=body.email.lower() if body.email else None,
            channel_ids=body.channel_ids,
            hours=hours,
            created_by=who.user_id,
        )
        audit_action(
            tx,
            request,
            who,
            "member.invited",
            "invitation",
            invitation["id"],
            {"role": body.role, "email": invitation["email"]},
        )
        return secret, invitation

    secret, invitation = await app.db.write(create)
    link = f"{app.base_url}/invite#token={secret}"
    return JSONResponse({"invitation": invitation, "link": link, "token": secret}, status_code=201)


@operation("Withdraw an invitation", tags=["members"], status=204, scope="members:manage", resource=True)
async def revoke_invitation(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    row = await identity.get_invitation(app.db, request.path_params["invitation_id"])
    if row is None:
        raise NotFound("no such invitation")
    await authorize(request, dict(row))
    invitation_id = row["id"]

    def revoke(tx: WriteTx) -> None:
        identity.revoke_invitation(tx, invitation_id)
        audit_action(tx, request, who, "member.invitation_revoked", "invitation", invitation_id)

    await app.db.write(revoke)
    return Response(status_code=204)
