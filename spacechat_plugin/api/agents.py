"""The agents the host runs, and who the caller is."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .common import JSONResponse, operation, spacechat


@operation("The agents the host runs", tags=["agents"], scope="agents:read")
async def list_agents(request: Request) -> Response:
    app = spacechat(request)
    agents = app.host.agents() if app.host is not None else []
    return JSONResponse({"agents": agents, "host": app.host.name if app.host is not None else None})
