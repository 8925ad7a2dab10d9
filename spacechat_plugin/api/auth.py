"""Signing in: the one-time setup link, login, logout and invitation links.

These routes are public (there is no one to check yet); each says so to the permission module
(`permissions.public`) so the route table stays complete. Failed and successful sign-ins are
audited; passwords and tokens never are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, Gone, NotFound, Unauthorized
from ..events import SYSTEM, Actor, now_rfc3339
from ..identity.auth import client_address, hash_password, verify_password
from ..identity.permissions import public
from ..store import audit, identity, tenancy
from ..store.db import WriteTx, loads
from .common import JSONResponse, operation, principal, read_json, spacechat
from .models import AcceptInvitation, InvitationToken, Login, Setup


def password_problem(password: str, email: str, minimum: int) -> str | None:
    if len(password) < minimum:
        return f"use at least {minimum} characters"
    if password.strip().lower() == email.lower():
        return "the password cannot be your email"
    return None


def require_good_password(password: str, email: str, minimum: int) -> None:
    problem = password_problem(password, email, minimum)
    if problem:
        raise BadRequest(
            f"password: {problem}", code="invalid_request", details=[{"path": "password", "message": problem}]
        )


def start_session(tx: WriteTx, request: Request, user: Mapping[str, Any], device_name: str) -> dict[str, Any]:
    """A new session for `user` on this device, audited as a sign-in (same transaction)."""
    address = client_address(request)
    session = identity.create_session(
        tx,
        user_id=user["id"],
        org_id=user["org_id"],
        device_name=device_name,
        user_agent=request.headers.get("user-agent", ""),
        ip=address,
        days=spacechat(request).settings.auth.session_days,
    )
    audit.append(
        tx,
        org_id=user["org_id"],
        actor=Actor("user", user["id"]),
        action="auth.login",
        target_type="session",
        target_id=session["id"],
        ip=address,
        details={"device": device_name},
    )
    return session


def signed_in(
    request: Request, session: dict[str, Any], user: dict[str, Any], *, return_token: bool, status: int = 200
) -> Response:
    """The answer to a successful sign-in: the session cookie, the CSRF token, and (for
    non-browser clients that ask) the session reference as a bearer token."""
    app = spacechat(request)
    assert app.auth is not None
    reference = app.auth.sign(session["id"])
    body: dict[str, Any] = {
        "user": user,
        "session": identity.session_json(session, current=session["id"]),
        "csrf_token": app.auth.csrf_token(session["id"]),
    }
    if return_token:
        body["session_token"] = reference
    response = JSONResponse(body, status_code=status)
    response.set_cookie(value=reference, **app.auth.cookie_options())
    return response


@operation(
    "Create the organisation's first owner from the one-time setup link",
    tags=["auth"],
    body=Setup,
    status=201,
    scope="public",
)
async def setup(request: Request) -> Response:
    public("auth:setup")
    app = spacechat(request)
    body = await read_json(request, Setup, max_bytes=64 * 1024)
    email = body.email.lower()
    require_good_password(body.password, email, app.settings.auth.password_min_length)
    password_hash = await hash_password(body.password)
    address = client_address(request)

    def create(tx: WriteTx) -> tuple[dict[str, Any], dict[str, Any]]:
        claim = identity.claim_setup_token(tx, body.token)
        if identity.has_owner(tx, claim["org_id"]):
            raise Gone("this organisation already has an owner", code="setup_link_used")
        user = identity.create_user(
            tx,
            org_id=claim["org_id"],
            kind="human",
            name=body.name,
            role="owner",
            email=email,
            password_hash=password_hash,
            instance_admin=bool(claim["instance_admin"]),
            actor=SYSTEM,
        )
        audit.append(
            tx,
            org_id=user["org_id"],
            actor=Actor("user", user["id"]),
            action="auth.setup",
            target_type="user",
            target_id=user["id"],
            ip=address,
            details={"email": email},
        )
        session = start_session(tx, request, user, body.device_name)
        return user, session

    user, session = await app.db.write(create)
    return signed_in(request, session, user, return_token=body.return_token, status=201)


@operation("Sign in with email and password", tags=["auth"], body=Login, scope="public")
async def login(request: Request) -> Response:
    public("auth:login")
    app = spacechat(request)
    assert app.auth is not None
    body = await read_json(request, Login, max_bytes=64 * 1024)
    email = body.email.strip().lower()
    address = client_address(request)
    app.auth.check_login_allowed(email, address)
    candidates = [row for row in await identity.find_login(app.db, email, body.org_id) if row["deactivated_at"] is None]
    if len(candidates) > 1:
        raise BadRequest(
            "this email has accounts in several organisations: send org_id",
            code="org_required",
            details={"org_ids": [row["org_id"] for row in candidates]},
        )
    row = candidates[0] if candidates else None
    ok = await verify_password(row["password_hash"] if row else None, body.password)
    if row is None or not ok:
        app.auth.login_failed(email, address)
        org_id = row["org_id"] if row else app.instance.org_id
        await app.db.write(
            lambda tx: audit.append(
                tx,
                org_id=org_id,
                actor=Actor("user", row["id"] if row else None),
                action="auth.login_failed",
                target_type="user",
                target_id=row["id"] if row else None,
                ip=address,
                outcome="denied",
                details={"email": email},
            )
        )
        raise Unauthorized("the email or password is wrong", code="invalid_credentials")
    app.auth.login_succeeded(email)
    session = await app.db.write(lambda tx: start_session(tx, request, row, body.device_name))
    return signed_in(request, session, identity.user_json(row), return_token=body.return_token)


@operation("Sign out: end this session", tags=["auth"], status=204, scope="any")
async def logout(request: Request) -> Response:
    app = spacechat(request)
    assert app.auth is not None
    who = await principal(request)
    if who.credential == "session" and who.credential_id:
        session_id = who.credential_id

        def end(tx: WriteTx) -> None:
            identity.revoke_session(tx, session_id, who.user_id)
            audit.append(
                tx,
                org_id=who.org_id,
                actor=who.actor,
                action="auth.logout",
                target_type="session",
                target_id=session_id,
                ip=client_address(request),
            )
            identity.access_ended(tx, who.org_id, who.actor, [session_id])

        await app.db.write(end)
    response = Response(status_code=204)
    response.delete_cookie(app.auth.cookie_options()["key"], path="/")
    return response


def _usable(row: Any) -> None:
    if row is None:
        raise NotFound("this invitation link is not valid", code="invitation_invalid")
    if row["revoked_at"] is not None:
        raise Gone("this invitation was withdrawn", code="invitation_revoked")
    if row["used_at"] is not None:
        raise Gone("this invitation was already used", code="invitation_used")
    if row["expires_at"] <= now_rfc3339():
        raise Gone("this invitation has expired", code="invitation_expired")


@operation(
    "What an invitation link offers (organisation, role, expiry)", tags=["auth"], body=InvitationToken, scope="public"
)
async def lookup_invitation(request: Request) -> Response:
    public("auth:invitation")
    app = spacechat(request)
    body = await read_json(request, InvitationToken, max_bytes=8 * 1024)
    row = await identity.peek_invitation(app.db, body.token)
    _usable(row)
    return JSONResponse(
        {
            "org": {"id": row["org_id"], "name": row["org_name"]},
            "role": row["role"],
            "email": row["email"],
            "expires_at": row["expires_at"],
        }
    )


@operation(
    "Accept an invitation: create the account and sign in",
    tags=["auth"],
    body=AcceptInvitation,
    status=201,
    scope="public",
)
async def accept_invitation(request: Request) -> Response:
    public("auth:invitation")
    app = spacechat(request)
    body = await read_json(request, AcceptInvitation, max_bytes=64 * 1024)
    email = body.email.lower()
    require_good_password(body.password, email, app.settings.auth.password_min_length)
    password_hash = await hash_password(body.password)
    address = client_address(request)

    def accept(tx: WriteTx) -> tuple[dict[str, Any], dict[str, Any]]:
        row = identity.invitation_by_secret(tx, body.token)
        _usable(row)
        if row["email"] and row["email"] != email:
            raise BadRequest("this invitation is for another email address", code="invitation_email_mismatch")
        inviter = Actor("user", row["created_by"])
        user = identity.create_user(
            tx,
            org_id=row["org_id"],
            kind="human",
            name=body.name,
            role=row["role"],
            email=email,
            password_hash=password_hash,
            actor=inviter,
        )
        identity.use_invitation(tx, row["id"], user["id"])
        for channel_id in loads(row["channel_ids"]):
            channel = tenancy.org_channel(tx, row["org_id"], channel_id)
            if channel is not None:
                identity.add_member(tx, channel, user["id"], inviter)
        audit.append(
            tx,
            org_id=user["org_id"],
            actor=Actor("user", user["id"]),
            action="auth.invitation_accepted",
            target_type="user",
            target_id=user["id"],
            ip=address,
            details={"invitation_id": row["id"], "role": row["role"]},
        )
        session = start_session(tx, request, user, body.device_name)
        return user, session

    user, session = await app.db.write(accept)
    return signed_in(request, session, user, return_token=body.return_token, status=201)
