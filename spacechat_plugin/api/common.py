"""What every route shares: JSON in and out, the error shape, query parsing, OpenAPI metadata."""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BadRequest, PayloadTooLarge, SpacechatError, Unprocessable, UnsupportedMediaType
from ..events import current_request_id, new_id
from ..identity.permissions import Principal, check
from ..store import audit, tenancy
from ..store.db import WriteTx

if TYPE_CHECKING:
    from ..identity.permissions import Principal
    from .context import Context

log = logging.getLogger("spacechat.api")

M = TypeVar("M", bound=BaseModel)


def spacechat(conn: HTTPConnection) -> Context:
    app: Context = conn.app.state.spacechat
    return app


async def channel_of(app: Context, channel_id: str) -> dict[str, Any] | None:
    """A channel by id, from the access cache (kept current at every commit) or the store."""
    cached = app.access.channels.get(channel_id)
    if cached is None:
        cached = await tenancy.get_channel(app.db, channel_id)
        if cached is not None:
            app.access.channels[channel_id] = cached
    return cached


async def principal(conn: HTTPConnection) -> Principal:
    """Authenticate the request (cached on it for the rest of the request)."""
    cached: Principal | None = conn.scope.get("spacechat.principal")
    if cached is None:
        auth = spacechat(conn).auth
        assert auth is not None, "the API is mounted only after start-up"
        cached = await auth.authenticate(conn)
        conn.scope["spacechat.principal"] = cached
    return cached


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: SpacechatError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**error.headers, **(headers or {})})


# --- request bodies ------------------------------------------------------------------------


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes", details={"max_bytes": max_bytes})
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes", details={"max_bytes": max_bytes})
        chunks.append(chunk)
    return b"".join(chunks)


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        parts.append(f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part)))
    return "".join(parts) or "(body)"


def validation_details(error: ValidationError) -> list[dict[str, str]]:
    details = []
    for item in error.errors(include_url=False):
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        details.append({"path": _path(tuple(item["loc"])), "message": message})
    return details


# U+0000 can be neither stored in Postgres's text nor compared with it (a 500 there). A request's
# U+0000 is read as U+FFFD on every store, as CommonMark reads it in Markdown ("for security
# reasons", spec 2.3): an id or a filter holding one still matches nothing, text keeps its place.
REPLACEMENT = "\ufffd"


def without_nul(value: Any) -> Any:
    """A JSON value (or a form's fields) with every U+0000 in its strings and keys read as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


async def read_json(request: Request, model: type[M], *, max_bytes: int) -> M:
    """Parse and validate a JSON body; 415, 413 or 400 (with the bad paths) otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
    raw = await read_body(request, max_bytes)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        message = f"the body is not valid: {details[0]['path']}: {details[0]['message']}"
        if all(item["type"] == "unsafe_text" for item in exc.errors()):
            # Well-formed, but text people would read says something else than it shows.
            raise Unprocessable(message, code="unsafe_text", details=details) from None
        raise BadRequest(message, code="invalid_request", details=details) from None
    if b"\\u0000" in raw:  # JSON spells U+0000 only so; validated as sent first (422 for names)
        body = model.model_validate(without_nul(data))
    return body


# --- query parameters ----------------------------------------------------------------------

_INT = re.compile(r"^\d{1,18}$")


def query_int(
    request: HTTPConnection, name: str, default: int | None, *, low: int = 0, high: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.match(raw):
        raise BadRequest(f"query parameter {name} must be a whole number", details={"parameter": name})
    value = int(raw)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"query parameter {name} must be {bound}", details={"parameter": name})
    return value


def time_param(value: str | None, name: str) -> str | None:
    """An RFC 3339 time in the log's own form (UTC, milliseconds), so times compare as text."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be an RFC 3339 time", details=[{"path": name, "message": "not a time"}]
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- audit ---------------------------------------------------------------------------------


def audit_action(
    tx: WriteTx,
    request: HTTPConnection,
    who: Principal,
    action: str,
    target_type: str | None,
    target_id: str | None,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> None:
    """Append an audit row for what `who` did in this request (same transaction as the act)."""
    from ..identity.auth import client_address

    audit.append(
        tx,
        org_id=who.org_id,
        actor=who.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip=client_address(request),
        outcome=outcome,
        details=details,
    )


# --- OpenAPI metadata ----------------------------------------------------------------------


@dataclass
class Operation:
    summary: str
    tags: list[str]
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    query: dict[str, str | dict[str, Any]] = field(default_factory=dict)
    scope: str | None = None
    raw_body: str | None = None  # media type description for non-JSON bodies
    produces: str = "application/json"
    also: tuple[int, ...] = ()  # other success statuses (a replayed send's 200, a waiting operation's 202)
    required_query: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)  # statuses beyond those of its kind, and why


Endpoint = Callable[[Request], Awaitable[Response]]
REQUIRED_SCOPE = "spacechat.required_scope"
# Scopes that name no permission: anyone (the route declares itself with permissions.public) or
# anyone signed in.
OPEN_SCOPES = ("public", "any")


def operation(
    summary: str, *, tags: list[str], resource: bool = False, **kwargs: Any
) -> Callable[[Endpoint], Endpoint]:
    """Describe an endpoint (api/openapi.py reads it) and check its scope, stated here once.

    With `scope="x:y"` the caller is authenticated and must hold the scope before the route
    runs. With `resource=True` the scope is checked against what the route loads (its
    organisation, the channel it lives in): the route calls `authorize(request, resource,
    channel=...)`, so another organisation's resource answers 404 before a missing scope answers
    403 (docs/permissions.md); the few routes whose scope depends on what they act on check it
    there too, with the same permission function. `scope="any"` needs only a sign-in;
    `"public"` not even that. tests/test_permissions_matrix.py runs every route as every role.
    """

    def mark(fn: Endpoint) -> Endpoint:
        op = Operation(summary, tags, **kwargs)
        scope = op.scope
        if scope is None or scope == "public":
            endpoint = fn
        else:

            @functools.wraps(fn)
            async def endpoint(request: Request) -> Response:
                who = await principal(request)
                request.scope[REQUIRED_SCOPE] = scope
                if scope not in OPEN_SCOPES and not resource:
                    check(who, scope)
                return await fn(request)

        endpoint.__spacechat_operation__ = op  # type: ignore[attr-defined]
        return endpoint

    return mark


async def authorize(
    request: Request, resource: Mapping[str, Any] | None, *, channel: Mapping[str, Any] | None = None
) -> Principal:
    """The permission check of a `resource=True` operation: the scope its `@operation` states,
    on the resource it loaded."""
    who = await principal(request)
    check(who, request.scope[REQUIRED_SCOPE], resource, channel=channel)
    return who


# --- middleware and error handling ---------------------------------------------------------


def scope_without_nul(scope: Scope) -> Scope:
    """The request's scope with U+0000 in the path or the query string read as U+FFFD (see
    REPLACEMENT), for every route: most read their query parameters themselves."""
    # A query string is percent-encoded: `%00` is how it holds U+0000.
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or "\x00" in scope["path"]:
        return {
            **scope,
            "path": scope["path"].replace("\x00", REPLACEMENT),
            "query_string": query.replace(b"%00", quote(REPLACEMENT).encode()),
        }
    return scope


class ApiRoute(Route):
    """A route whose request goes straight to its endpoint (#16). Starlette's Route runs every
    endpoint inside `request_response`, which catches errors with the same handlers the API's
    ExceptionMiddleware already has and wraps `send` once more: two frames on every resume of the
    request's coroutine chain and one more call per message sent, for nothing here. A method the
    route does not take still gets Starlette's 405."""

    def __init__(self, path: str, endpoint: Callable[[Request], Awaitable[Response]], **kwargs: Any) -> None:
        assert inspect.iscoroutinefunction(endpoint), f"{path}: an API endpoint is a coroutine function"
        super().__init__(path, endpoint, **kwargs)
        self._endpoint = endpoint

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            await super().handle(scope, receive, send)
            return
        response = await self._endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


class RequestIdMiddleware:
    """Give every request an id (or keep the caller's X-Request-ID), echo it in the response,
    and turn any error into the one JSON shape with no stack trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope = scope_without_nul(scope)
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", incoming) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        token = current_request_id.set(request_id)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            telemetry = getattr(getattr(scope.get("app"), "state", None), "spacechat", None)
            telemetry = getattr(telemetry, "telemetry", None)
            if telemetry is None:
                await self.app(scope, receive, send_with_id)
            else:  # a span per request: its log lines carry the trace id next to the request id
                with telemetry.request_span(scope.get("method", "WS"), scope.get("path", ""), request_id):
                    await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client hung up before its body arrived: nobody to answer, and not our error.
            log.info("the client disconnected before sending its whole request")
        except Exception:
            log.exception("unhandled error")
            if scope["type"] == "http" and not started:
                error = SpacechatError("something went wrong on our side", details={"request_id": request_id})
                await error_response(error)(scope, receive, send_with_id)
            elif scope["type"] != "http":
                raise
        finally:
            current_request_id.reset(token)


async def handle_spacechat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpacechatError)
    return error_response(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no such route" if exc.status_code == 404 else str(exc.detail)
    error = SpacechatError(message, code=_HTTP_CODES.get(exc.status_code, "error"))
    error.status = exc.status_code
    return error_response(error, headers=dict(exc.headers or {}))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    SpacechatError: handle_spacechat_error,
    HTTPException: handle_http_exception,
}
