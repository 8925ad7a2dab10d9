"""Stop a streaming agent reply: the turn ends at once and keeps what it wrote (#15).

In the AI SDK a stop is only a dropped connection and the partial answer is lost; here the host
is told (HostAPI `stop_turn`: the embedded host cancels the turn, the bridge Spacebot's
processes), the reply ends `completed` with reason `stopped` and its text so far, and the
request it cut is counted in usage.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import Conflict, NotFound
from ..identity.permissions import check
from ..store import audit
from ..store import messages as message_store
from ..store.db import WriteTx
from .common import JSONResponse, authorize, channel_of, operation, spacechat
from .forward import address_of, to_agents_gateway


@operation(
    "Stop a streaming agent reply (the author of the message that started it, or ops:retry); it ends"
    " completed with reason stopped and keeps its text",
    tags=["messages"],
    scope="messages:read",
    resource=True,
)
async def stop_reply(request: Request) -> Response:
    if (forwarded := await to_agents_gateway(request)) is not None:  # several gateways: where the agents run
        return forwarded
    app = spacechat(request)
    message = await message_store.get_message(app.db, request.path_params["message_id"])
    if message is None:
        raise NotFound("no such message")
    channel = await channel_of(app, message["channel_id"])
    who = await authorize(request, message, channel=channel)
    started_by = await message_store.authors(app.db, list(message["metadata"].get("in_reply_to") or []))
    if who.user_id not in started_by:
        check(who, "ops:retry", message, channel=channel)
    stream = app.replies.streaming(message["id"])
    if message["author"]["kind"] != "agent" or message["state"] not in message_store.OPEN_STATES or stream is None:
        raise Conflict("only a streaming agent reply can be stopped", code="not_streaming")
    if app.host is None:
        raise Conflict("no agent host is running", code="no_host")
    app.replies.mark_stopping(stream, who.user_id)
    try:
        result = await app.host.stop_turn(
            turn_id=stream.turn_id, agent_id=stream.agent_id, channel_id=stream.channel_id, thread_id=stream.thread_id
        )
    except (LookupError, RuntimeError):
        app.replies.unmark_stopping(stream)
        raise Conflict("the reply ended before it could be stopped", code="not_streaming") from None

    def record(tx: WriteTx) -> None:
        audit.append(
            tx,
            org_id=who.org_id,
            actor=who.actor,
            action="agent.turn_stopped",
            target_type="message",
            target_id=message["id"],
            ip=address_of(request),
            details={"turn_id": stream.turn_id, "agent_id": stream.agent_id},
        )

    await app.db.write(record)
    await app.approvals.turn_stopped(stream.turn_id, who.actor, who.name or who.user_id)
    stopped = await message_store.get_message(app.db, message["id"])
    return JSONResponse({"message": stopped, "turn_id": result.get("turn_id", stream.turn_id)})
