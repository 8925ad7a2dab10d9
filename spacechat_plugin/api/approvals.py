"""Tool approvals: the pending inbox (oldest first, with age), decisions, policies per agent and
tool, and the rules people made ("Deny and remember", "Approve for this thread")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound
from ..identity.auth import client_address
from ..store import approvals as approval_store
from .common import JSONResponse, authorize, operation, principal, read_json, spacechat
from .opsmodels import ApprovalDecision, ApprovalPolicyBody

BODY_BYTES = 16 * 1024


@operation("Pending tool approvals, oldest first, with their age", tags=["approvals"], scope="tasks:approve")
async def approvals_inbox(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"approvals": await app.approvals.inbox(who.org_id)})


@operation(
    "Decide a tool approval: approve, approve_thread, deny or deny_remember",
    tags=["approvals"],
    body=ApprovalDecision,
    scope="tasks:approve",
    resource=True,
)
async def decide_approval(request: Request) -> Response:
    app = spacechat(request)
    approval = await approval_store.get(app.db, request.path_params["approval_id"])
    if approval is None:
        raise NotFound("no such approval")
    who = await authorize(request, approval, channel=app.access.channels.get(approval["channel_id"]))
    body = await read_json(request, ApprovalDecision, max_bytes=BODY_BYTES)
    result = await app.approvals.decide(
        approval["id"], body.decision, who.actor, who_name=who.name or who.user_id, ip=client_address(request)
    )
    return JSONResponse(result)


@operation("Approval policies: the API's, the config's, and the default", tags=["approvals"], scope="tasks:approve")
async def list_approval_policies(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    settings = app.settings.approvals
    return JSONResponse(
        {
            "policies": await approval_store.policies(app.db, who.org_id),
            "config": [p.model_dump() for p in settings.policies],
            "default": settings.default,
            "escalate_after_minutes": settings.escalate_after_minutes,
            "escalate_to": settings.escalate_to,
            "timeout_minutes": settings.timeout_minutes,
        }
    )


@operation(
    "Set the approval policy and risk of a tool (for one agent or every agent)",
    tags=["approvals"],
    body=ApprovalPolicyBody,
    scope="approvals:manage",
)
async def set_approval_policy(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    body = await read_json(request, ApprovalPolicyBody, max_bytes=BODY_BYTES)
    policy = await app.approvals.set_policy(
        who, body.agent_id, body.tool, body.policy, body.risk, client_address(request)
    )
    return JSONResponse({"policy": policy})


@operation("Remove an approval policy set through the API", tags=["approvals"], status=204, scope="approvals:manage")
async def delete_approval_policy(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    params = request.path_params
    await app.approvals.delete_policy(who, params["agent_id"], params["tool"], client_address(request))
    return Response(status_code=204)


@operation(
    "Rules people made by deciding: remembered denials, thread approvals", tags=["approvals"], scope="tasks:approve"
)
async def list_approval_rules(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    return JSONResponse({"rules": await approval_store.rules(app.db, who.org_id)})


@operation(
    "Forget a rule (a remembered denial, a thread's approval)", tags=["approvals"], status=204, scope="approvals:manage"
)
async def forget_approval_rule(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    await app.approvals.forget_rule(who, request.path_params["rule_id"], client_address(request))
    return Response(status_code=204)
