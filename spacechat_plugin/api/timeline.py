"""A thread's provenance timeline: every agent step in order, from the event log (#15)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..agents import provenance
from ..errors import NotFound
from ..store import log as event_log
from ..store import messages as message_store
from .common import JSONResponse, authorize, channel_of, operation, spacechat


@operation(
    "A thread's provenance: messages, turns, model calls (tokens, cost, latency), tool calls, approvals"
    " with their rules, interactions, retries, stops and memory candidates, in order",
    tags=["observability"],
    scope="messages:read",
    resource=True,
)
async def thread_timeline(request: Request) -> Response:
    app = spacechat(request)
    thread = await message_store.get_thread(app.db, request.path_params["thread_id"])
    if thread is None:
        raise NotFound("no such thread")
    await authorize(request, thread, channel=await channel_of(app, thread["channel_id"]))
    envelopes = await event_log.thread_events(app.db, thread["id"], provenance.TYPES)
    return JSONResponse(
        {
            "thread_id": thread["id"],
            "retained_since_seq": await event_log.pruned_through(app.db),
            "steps": provenance.steps(envelopes),
        }
    )
