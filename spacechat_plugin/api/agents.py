"""The agents the host runs, and who the caller is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..agents.home import org_agents
from .common import JSONResponse, operation, principal, spacechat


@operation("The agents of the caller's organisation", tags=["agents"], scope="agents:read")
async def list_agents(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    agents = org_agents(app.host, app.instance, who.org_id)
    return JSONResponse({"agents": agents, "host": app.host.name if app.host is not None else None})
