"""Single sign-on routes (docs/sso.md): which organisations offer it, the browser's way to the
organisation's identity provider and back, and the provider's settings for the organisation's
owners and admins.

The sign-in routes are public (there is nobody to check yet) and say so to the permission
module; the settings routes need `members:manage`, checked by `@operation` like every other
route. A refusal is the usual JSON error; a browser (one that asks for HTML) gets the same
status with a page it can show.
"""

from __future__ import annotations

import hmac
from html import escape
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import BadRequest, Forbidden, SpacechatError, TooManyRequests
from ..events import Actor
from ..identity import sso as oidc
from ..identity.auth import client_address
from ..identity.permissions import public
from ..store import audit
from ..store import sso as store
from ..store.db import WriteTx
from .auth import start_session
from .common import Endpoint, JSONResponse, audit_action, operation, principal, read_json, spacechat
from .models import SSOSettings

if TYPE_CHECKING:
    from .context import Context

SSO_COOKIE = "spacechat_sso"
COOKIE_PATH = "/v1/auth/sso"
CALLBACK_PATH = "/v1/auth/sso/callback"
DEVICE = "browser (single sign-on)"
PROVIDER_ERRORS = {"502": "The identity provider could not be reached, or answered what it must not"}


def callback_url(app: Context) -> str:
    """Where the provider sends the browser back: register this at the provider."""
    return app.base_url + CALLBACK_PATH


def login_path(org_id: str) -> str:
    return f"/v1/auth/sso/{org_id}/login"


def _return_to(value: str | None) -> str:
    """A page of ours to land on: a path, never another site (`//evil.example` is one)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")) and len(value) <= 500:
        return value
    return "/"


async def _as_page(request: Request, handler: Endpoint) -> Response:
    """Run a browser route; a refusal shown as a page to a browser, as JSON to anyone else."""
    try:
        return await handler(request)
    except SpacechatError as refusal:
        if "text/html" not in request.headers.get("accept", ""):
            raise
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign-in refused</title>"
            "<meta name='viewport' content='width=device-width'></head><body><main>"
            f"<h1>Single sign-on did not sign you in</h1><p>{escape(refusal.message)}.</p>"
            f"<p><small>{escape(refusal.code)}</small></p><p><a href='/login'>Back to sign-in</a></p>"
            "</main></body></html>"
        )
        return HTMLResponse(page, status_code=refusal.status, headers=refusal.headers)


# --- signing in ------------------------------------------------------------------------------


@operation("Organisations whose people may sign in with single sign-on", tags=["auth"], scope="public")
async def sso_providers(request: Request) -> Response:
    public("auth:sso")
    rows = await store.enabled_providers(spacechat(request).db)
    offered = [{"org_id": r["org_id"], "org_name": r["org_name"], "login_url": login_path(r["org_id"])} for r in rows]
    return JSONResponse({"providers": offered})


@operation(
    "Sign in with the organisation's identity provider: a redirect to it (state, nonce, PKCE)",
    tags=["auth"],
    scope="public",
    status=302,
    query={"next": "The page of ours to land on afterwards (a path)"},
    errors=PROVIDER_ERRORS,
)
async def sso_login(request: Request) -> Response:
    public("auth:sso")
    return await _as_page(request, _start)


async def _start(request: Request) -> Response:
    app = spacechat(request)
    address = client_address(request)
    wait = app.sso.starts.blocked_for(address)
    if wait > 0:
        raise TooManyRequests(
            "too many sign-ins started; try again shortly",
            details={"retry_after_seconds": int(wait) + 1},
            headers={"Retry-After": str(int(wait) + 1)},
        )
    app.sso.started(address)
    provider = await app.sso.provider(request.path_params["org_id"])
    url, state = await app.sso.begin(
        provider, redirect_uri=callback_url(app), return_to=_return_to(request.query_params.get("next"))
    )
    response = RedirectResponse(url, status_code=302)
    # The state again, in a cookie only this browser holds: a callback link someone else started
    # (login CSRF, RFC 6749 section 10.12) finds no matching cookie here.
    response.set_cookie(
        SSO_COOKIE,
        state,
        max_age=oidc.LOGIN_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=app.auth.cookie_options()["secure"] if app.auth else False,
    )
    return response


@operation(
    "Where the identity provider sends the browser back: verify, sign in, and go on",
    tags=["auth"],
    scope="public",
    status=303,
    query={
        "state": "The state this sign-in began with",
        "code": "The provider's authorization code",
        "error": "The provider's refusal, instead of a code",
        "error_description": "The provider's words about its refusal",
    },
    required_query=("state",),
    errors=PROVIDER_ERRORS,
)
async def sso_callback(request: Request) -> Response:
    public("auth:sso")
    return await _as_page(request, _finish)


async def _finish(request: Request) -> Response:
    app = spacechat(request)
    assert app.auth is not None
    state = request.query_params.get("state", "")
    cookie = request.cookies.get(SSO_COOKIE, "")
    if not state:
        raise BadRequest("the provider's answer carries no state", code="sso_state_invalid")
    if not cookie or not hmac.compare_digest(cookie.encode(), state.encode()):
        raise BadRequest("this sign-in was started in another browser; start it again here", code="sso_state_mismatch")
    login = await app.db.write(lambda tx: store.claim_login(tx, state))
    try:
        provider = await app.sso.provider(login["org_id"])
        error = request.query_params.get("error")
        if error:
            raise Forbidden(
                "the identity provider did not sign you in", code="sso_denied", details={"provider_error": error[:100]}
            )
        code = request.query_params.get("code")
        if not code:
            raise BadRequest("the provider's answer carries no code", code="invalid_request")
        person = await app.sso.finish(provider, login, code=code, redirect_uri=callback_url(app))
        session = await app.db.write(lambda tx: _sign_in(tx, request, provider, person))
    except SpacechatError as refusal:
        await _audit_refusal(request, login["org_id"], refusal)
        raise
    response = RedirectResponse(login["return_to"], status_code=303)
    response.set_cookie(value=app.auth.sign(session["id"]), **app.auth.cookie_options())
    response.delete_cookie(SSO_COOKIE, path=COOKIE_PATH)
    return response


def _sign_in(tx: WriteTx, request: Request, provider: oidc.Provider, person: oidc.Person) -> dict[str, Any]:
    """The account (made now if it is new) and its session row, audited, in one transaction."""
    user, created = oidc.account(tx, provider, person)
    if created:
        audit.append(
            tx,
            org_id=provider.org_id,
            actor=Actor("user", user["id"]),
            action="auth.sso_account_created",
            target_type="user",
            target_id=user["id"],
            ip=client_address(request),
            details={"email": person.email, "role": user["role"], "issuer": provider.issuer},
        )
    return start_session(tx, request, user, DEVICE)


async def _audit_refusal(request: Request, org_id: str, refusal: SpacechatError) -> None:
    await spacechat(request).db.write(
        lambda tx: audit.append(
            tx,
            org_id=org_id,
            actor=Actor("user", None),
            action="auth.login_failed",
            target_type="org",
            target_id=org_id,
            ip=client_address(request),
            outcome="denied",
            details={"method": "sso", "reason": refusal.code},
        )
    )


# --- the organisation's provider -------------------------------------------------------------


def _settings(app: Context, org_id: str, sso: dict[str, Any] | None) -> dict[str, Any]:
    return {"sso": sso, "redirect_uri": callback_url(app), "login_url": app.base_url + login_path(org_id)}


@operation(
    "The organisation's single sign-on provider (never its client secret)", tags=["auth"], scope="members:manage"
)
async def get_sso(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    row = await store.get_provider(app.db, who.org_id)
    return JSONResponse(_settings(app, who.org_id, None if row is None else store.provider_json(row)))


@operation("Set the organisation's single sign-on provider", tags=["auth"], body=SSOSettings, scope="members:manage")
async def put_sso(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, SSOSettings, max_bytes=64 * 1024)

    def save(tx: WriteTx) -> dict[str, Any]:
        saved = store.put_provider(tx, who.org_id, body.model_dump(), who.user_id)
        details = {
            "issuer": body.issuer,
            "client_id": body.client_id,
            "enabled": body.enabled,
            "client_secret_changed": body.client_secret is not None,
        }
        audit_action(tx, request, who, "sso.updated", "org", who.org_id, details)
        return saved

    return JSONResponse(_settings(app, who.org_id, await app.db.write(save)))


@operation("Turn single sign-on off and forget the provider", tags=["auth"], status=204, scope="members:manage")
async def delete_sso(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)

    def forget(tx: WriteTx) -> None:
        if store.delete_provider(tx, who.org_id):
            audit_action(tx, request, who, "sso.deleted", "org", who.org_id)

    await app.db.write(forget)
    return Response(status_code=204)
