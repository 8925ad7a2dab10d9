"""Operations on the agents go to the gateway that runs them (issue 17).

With several gateways the embedded host's agents run in the one holding the lease; a retry,
restart, reconnect or recover sent to another gateway would find no turn there. Such a request
is sent on, as it came (method, path, body, credentials, Host and Origin), to the holder's
`gateway.url`, and its answer is returned unchanged: the holder checks the credentials and the
permission again, runs the operation and audits it.

The forwarding gateway vouches for the client's address with a signature made with the secret
every gateway shares (`Authenticator.gateway_signature`), so the audit log records the person's
address, not the forwarding gateway's. A request that carries no valid signature is an ordinary
request: its address is the one the holder sees.
"""

from __future__ import annotations

import hmac
import time

import httpx
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ServiceUnavailable
from ..identity.auth import client_address
from .common import spacechat

HEADER = "x-spacechat-forwarded"
# How old a signed forward may be when it arrives (clocks of gateways are kept by NTP).
MAX_AGE_SECONDS = 60
# Not copied either way: the connection's own, and what httpx sets again.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "content-length",
    "content-encoding",
    HEADER,
}
# What of the holder's answer is returned (this gateway adds its own security headers).
KEPT = {"content-type", "retry-after", "idempotent-replayed"}
TIMEOUT_SECONDS = 30


def _signed(request: Request, gateway_id: str, address: str, stamp: str) -> str:
    return f"{gateway_id};{address};{stamp};{request.method};{request.url.path}"


def forwarded_address(request: Request) -> str | None:
    """The client's address as the gateway that forwarded this request vouched for it; None
    when it was not forwarded by a gateway (or the signature does not hold)."""
    value = request.headers.get(HEADER)
    auth = spacechat(request).auth
    if not value or auth is None:
        return None
    parts = value.split(";")
    if len(parts) != 4:
        return None
    gateway_id, address, stamp, signature = parts
    try:
        age = abs(time.time() - float(stamp))
    except ValueError:
        return None
    expected = auth.gateway_signature(_signed(request, gateway_id, address, stamp))
    if age > MAX_AGE_SECONDS or not hmac.compare_digest(signature, expected):
        return None
    return address


def address_of(request: Request) -> str:
    """The client's address for the audit log: vouched for by a forwarding gateway, or seen."""
    return forwarded_address(request) or client_address(request)


def _holder_url(request: Request) -> str:
    app = spacechat(request)
    relay = app.relay
    holders = [g for g in (relay.gateways() if relay is not None else []) if g.get("runs_agents") and g.get("alive")]
    holders = [g for g in holders if g["id"] != app.gateway_id and g.get("url")]
    if not holders:
        raise ServiceUnavailable(
            "no gateway runs the agents just now (the lease is changing hands); try again",
            code="agents_unavailable",
            headers={"Retry-After": "2"},
        )
    return str(holders[0]["url"])


async def to_agents_gateway(request: Request) -> Response | None:
    """When another gateway runs the agents, this request's answer from there; None when it is
    for this gateway to handle (one process, this gateway holds the lease)."""
    app = spacechat(request)
    if app.runs_agents:
        return None
    if forwarded_address(request) is not None:
        # Forwarded here as the holder, and the lease moved meanwhile: once is enough.
        raise ServiceUnavailable(
            "the agents moved to another gateway just now; try again",
            code="agents_unavailable",
            headers={"Retry-After": "1"},
        )
    auth = app.auth
    assert auth is not None, "the API is mounted only after start-up"
    target = _holder_url(request)
    body = await request.body()
    address, stamp = client_address(request), f"{time.time():.3f}"
    signature = auth.gateway_signature(_signed(request, app.gateway_id, address, stamp))
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
    headers.append((HEADER, f"{app.gateway_id};{address};{stamp};{signature}"))
    url = target + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            answer = await client.request(request.method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            "the gateway that runs the agents did not answer; try again",
            code="agents_unavailable",
            details={"reason": type(exc).__name__},
            headers={"Retry-After": "2"},
        ) from None
    kept = {k: v for k, v in answer.headers.items() if k.lower() in KEPT}
    return Response(answer.content, status_code=answer.status_code, headers=kept)
