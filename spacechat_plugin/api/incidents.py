"""Incidents beyond the basic actions (api/ops.py): severity, roles, status updates, pinned
messages, and the timeline with the retrospective draft (#15)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadRequest, NotFound
from ..identity.auth import client_address
from ..identity.permissions import Principal, check
from ..store import identity
from ..store import incidents as incident_store
from ..store import messages as message_store
from .common import JSONResponse, M, authorize, channel_of, operation, principal, read_json, spacechat
from .opsmodels import IncidentPin, IncidentRole, IncidentSeverity, IncidentUpdate

if TYPE_CHECKING:
    from .context import Context

BODY_BYTES = 16 * 1024


async def load_incident(request: Request) -> dict[str, Any]:
    """The incident the path names, once the caller may act on it (404 across organisations)."""
    app = spacechat(request)
    incident = await incident_store.get(app.db, request.path_params["incident_id"])
    if incident is None:
        raise NotFound("no such incident")
    await authorize(request, incident)
    return incident


async def _change(request: Request, model: type[M]) -> tuple[Context, dict[str, Any], M, Principal]:
    """What every change to an incident starts with: the app, the incident, the body and who."""
    incident = await load_incident(request)
    body = await read_json(request, model, max_bytes=BODY_BYTES)
    return spacechat(request), incident, body, await principal(request)


@operation(
    "An incident's timeline (every step and pinned message), roles and retrospective draft",
    tags=["incidents"],
    scope="incidents:read",
    resource=True,
)
async def incident_timeline(request: Request) -> Response:
    app = spacechat(request)
    incident = await load_incident(request)
    return JSONResponse(
        {
            "incident": incident,
            "roles": await incident_store.roles(app.db, incident["id"]),
            "timeline": await incident_store.timeline(app.db, incident["id"]),
            "severities": [s.model_dump() for s in app.settings.incidents.severities],
            "role_names": app.settings.incidents.roles,
        }
    )


@operation(
    "Change an incident's severity", tags=["incidents"], body=IncidentSeverity, scope="incidents:manage", resource=True
)
async def set_incident_severity(request: Request) -> Response:
    app, incident, body, who = await _change(request, IncidentSeverity)
    updated = await app.incidents.set_severity(incident["id"], body.severity, who.actor, ip=client_address(request))
    return JSONResponse({"incident": updated})


@operation(
    "Assign a role (lead, communications, ...) to a member",
    tags=["incidents"],
    body=IncidentRole,
    scope="incidents:manage",
    resource=True,
)
async def assign_incident_role(request: Request) -> Response:
    app, incident, body, who = await _change(request, IncidentRole)
    if await identity.org_of_user(app.db, body.user_id) != who.org_id:
        raise BadRequest(
            "user_id is not a member of this organisation", details=[{"path": "user_id", "message": "unknown"}]
        )
    updated = await app.incidents.assign_role(
        incident["id"], body.role, body.user_id, who.actor, ip=client_address(request)
    )
    return JSONResponse({"incident": updated, "roles": await incident_store.roles(app.db, incident["id"])})


@operation(
    "Post a status update", tags=["incidents"], body=IncidentUpdate, status=201, scope="incidents:manage", resource=True
)
async def post_incident_update(request: Request) -> Response:
    app, incident, body, who = await _change(request, IncidentUpdate)
    updated = await app.incidents.post_update(incident["id"], body.text, who.actor, ip=client_address(request))
    return JSONResponse({"incident": updated}, status_code=201)


@operation(
    "Pin a message to the incident's timeline",
    tags=["incidents"],
    body=IncidentPin,
    status=201,
    scope="incidents:manage",
    resource=True,
)
async def pin_to_incident(request: Request) -> Response:
    app, incident, body, who = await _change(request, IncidentPin)
    message = await message_store.get_message(app.db, body.message_id)
    if message is None:
        raise NotFound("no such message")
    check(who, "messages:read", message, channel=await channel_of(app, message["channel_id"]))
    updated = await app.incidents.pin(incident["id"], message, who.actor, ip=client_address(request))
    return JSONResponse({"incident": updated}, status_code=201)
