"""Operations and incidents: the control plane. Each operation needs its scope and a reason,
and is audited; incidents move open -> acknowledged -> resolved, with escalation on the way.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..agents.home import find_agent, provider_orgs
from ..errors import BadRequest, NotFound
from ..identity.auth import client_address
from ..identity.permissions import INSTANCE, check, may
from ..operations import incidents as incident_service
from ..store import identity
from ..store import incidents as incident_store
from ..store import messages as message_store
from .common import JSONResponse, authorize, channel_of, operation, principal, query_int, read_json, spacechat
from .forward import address_of, to_agents_gateway
from .incidents import load_incident as _incident
from .models import IncidentAction, OpsDecision, OpsRequest
from .opsmodels import OpenIncident


async def _operate(request: Request, action: str, target: str) -> Response:
    app = spacechat(request)
    who = await principal(request)  # the scope was checked by @operation (one per action)
    forwarded = await to_agents_gateway(request)  # several gateways: the agents run in one
    if forwarded is not None:
        return forwarded
    body = await read_json(request, OpsRequest, max_bytes=16 * 1024)
    status, result = await app.ops.request(
        who, action, target, body.reason, ip=address_of(request), thread_id=body.thread_id
    )
    return JSONResponse(result, status_code=status)


@operation(
    "Run a channel's last agent turn again (the failed reply is marked superseded)",
    tags=["ops"],
    body=OpsRequest,
    scope="ops:retry",
    resource=True,
)
async def retry(request: Request) -> Response:
    app = spacechat(request)
    channel = await channel_of(app, request.path_params["channel_id"])
    if channel is None:
        raise NotFound("no such channel")
    await authorize(request, channel, channel=channel)
    return await _operate(request, "retry", channel["id"])


@operation("Restart an agent's channel processes", tags=["ops"], body=OpsRequest, scope="ops:restart", resource=True)
async def restart(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    # Another organisation's agent does not exist here (issue 10: B's owner restarted A's agent).
    agent = find_agent(app.host, app.instance, who.org_id, request.path_params["agent_id"])
    if agent is None:
        raise NotFound("no such agent")
    await authorize(request, agent)
    return await _operate(request, "restart", agent["id"])


@operation(
    "Reconnect a model provider (or, in bridge mode, the link to Spacebot); one that several "
    "organisations share needs the instance role",
    tags=["ops"],
    body=OpsRequest,
    scope="ops:reconnect",
    resource=True,
)
async def reconnect(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    name = request.path_params["name"]
    orgs = provider_orgs(app.host, app.instance, name)
    if who.org_id not in orgs and (orgs or not may(who, "instance:operate")):
        raise NotFound("no such provider")  # another organisation's alone: it does not exist here
    if orgs == {who.org_id}:
        await authorize(request, {"org_id": who.org_id})
    else:
        # Shared with another organisation, or used by no agent (the bridge's link): instance-wide.
        await authorize(request, INSTANCE)
    return await _operate(request, "reconnect", name)


@operation(
    "Recover the instance: restart every channel process and reconnect every provider (instance role)",
    tags=["ops"],
    body=OpsRequest,
    scope="ops:recover",
    resource=True,
)
async def recover(request: Request) -> Response:
    # Every organisation's agents: the instance role, never an organisation's owner as such.
    await authorize(request, INSTANCE)
    return await _operate(request, "recover", "instance")


@operation("Operations waiting for (or decided by) a second operator", tags=["ops"], scope="diagnostics:read")
async def pending(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"operations": await app.ops.pending(who.org_id)})


@operation(
    "Approve or deny an operation as the second operator (not the one who asked)",
    tags=["ops"],
    body=OpsDecision,
    scope="ops:retry",
    resource=True,  # the service checks the scope of the operation decided (ops.Ops.decide)
)
async def decide(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    decision = request.path_params["decision"]
    if decision not in ("approve", "deny"):
        raise NotFound("decide with approve or deny")
    await read_json(request, OpsDecision, max_bytes=16 * 1024) if await request.body() else None
    forwarded = await to_agents_gateway(request)  # an approved operation runs where the agents do
    if forwarded is not None:
        return forwarded
    result = await app.ops.decide(
        who, request.path_params["operation_id"], decision == "approve", ip=address_of(request)
    )
    return JSONResponse(result)


# --- incidents -----------------------------------------------------------------------------


@operation(
    "Incidents, newest first",
    tags=["incidents"],
    scope="incidents:read",
    query={
        "status": {
            "description": "active, triage, investigating, mitigated, resolved or closed (open and acknowledged"
            " are read as triage and investigating)",
            "enum": ["active", "triage", "investigating", "mitigated", "resolved", "closed", "open", "acknowledged"],
        },
        "limit": "1-500, default 100",
    },
)
async def list_incidents(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    status = request.query_params.get("status")
    status = {"open": "triage", "acknowledged": "investigating"}.get(status or "", status)
    if status and status not in ("active", "triage", "investigating", "mitigated", "resolved", "closed"):
        raise BadRequest(
            "status is active, triage, investigating, mitigated, resolved or closed",
            details=[{"path": "status", "message": "unknown"}],
        )
    limit = query_int(request, "limit", 100, low=1, high=500)
    assert limit is not None
    return JSONResponse({"incidents": await incident_store.listing(app.db, who.org_id, status, limit)})


@operation("An incident", tags=["incidents"], scope="incidents:read", resource=True)
async def get_incident(request: Request) -> Response:
    return JSONResponse({"incident": await _incident(request)})


@operation(
    "Open an incident by hand, or from a message (`message_id`: pinned to its timeline)",
    tags=["incidents"],
    body=OpenIncident,
    status=201,
    scope="incidents:manage",
)
async def open_incident(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, OpenIncident, max_bytes=16 * 1024)
    source = None
    if body.message_id is not None:
        source = await message_store.get_message(app.db, body.message_id)
        if source is None:
            raise NotFound("no such message")
        check(who, "messages:read", source, channel=await channel_of(app, source["channel_id"]))
    incident = await app.incidents.open(
        org_id=who.org_id,
        kind="manual",
        title=body.title,
        severity=body.severity,
        details={"error": body.details} if body.details else {},
        actor=who.actor,
        from_message=source,
    )
    return JSONResponse({"incident": incident}, status_code=201)


@operation(
    "Acknowledge, mitigate, resolve, close or escalate (to role:admin, role:owner or a member) an incident",
    tags=["incidents"],
    body=IncidentAction,
    scope="incidents:manage",
    resource=True,
)
async def incident_action(request: Request) -> Response:
    app = spacechat(request)
    action = request.path_params["action"]
    if action not in ("acknowledge", "mitigate", "resolve", "close", "escalate"):
        raise NotFound("the actions are acknowledge, mitigate, resolve, close and escalate")
    incident = await _incident(request)
    who = await principal(request)
    body = await read_json(request, IncidentAction, max_bytes=16 * 1024) if await request.body() else IncidentAction()
    if action == "escalate":
        if not body.to:
            raise BadRequest("escalate needs `to`", details=[{"path": "to", "message": "required"}])
        if body.to not in incident_service.ESCALATE_TO and await identity.org_of_user(app.db, body.to) != who.org_id:
            raise BadRequest(
                "escalate to role:admin, role:owner or a member of this organisation",
                details=[{"path": "to", "message": "unknown"}],
            )
    updated = await app.incidents.act(
        str(incident["id"]), action, who.actor, to=body.to, note=body.note, ip=client_address(request)
    )
    return JSONResponse({"incident": updated})
