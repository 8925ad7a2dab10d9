"""A local server that speaks the Rust Spacebot's HTTP API as the bridge uses it.

It stands in for Spacebot (a Rust program that cannot run here), following its `src/api/`
(see docs/bridge.md): routes under `/api`; `Authorization: Bearer <token>` on every route but
`/api/health`, refused with 401 `{"error":"unauthorized"}`; `GET /api/events` as Server-Sent
Events, `event: <name>` + `data: <json with "type">` frames and `: ping` keep-alive comments;
`POST /api/portal/send` answering `{"ok":true}` at once and playing the agent's reply later on
the event stream, with `channel_id` equal to the session id, in the order Spacebot emits it;
`GET /api/tasks/{n}` as `{"task": ...}`; `GET /api/usage` totals; `POST
/api/channels/cancel-process`. Tests push any other event with `emit`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

REPLY = "Hello from Spacebot. It is Tuesday, and the plan is ready."
TOOL_RESULT = "Tue Jan  6 12:00:00 UTC 2026"
USAGE_COUNTERS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "request_count",
)
# Spacebot's SSE event name and the JSON `type` differ for these (serde renames).
JSON_TYPES = {"worker_status": "worker_status_update", "opencode_part_updated": "open_code_part_updated"}


class FakeSpacebot:
    def __init__(self, token: str = "", *, ping_seconds: float = 0.5, delta_chars: int = 9) -> None:
        self.token = token
        self.ping_seconds = ping_seconds
        self.delta_chars = delta_chars
        self.delta_pause = 0.002  # seconds between streamed pieces of the reply
        self.reply = REPLY
        self.replying = True  # play the scripted reply after each portal send
        self.healthy = True
        self.send_status = 200
        self.usage_status = 200
        self.cost_status = "estimated"
        self.usage: dict[str, list[dict[str, Any]]] = {}  # agent id -> by_model rows
        self.tasks: dict[int, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.send_auth: list[str | None] = []
        self.cancels: list[dict[str, Any]] = []
        self.task_requests: list[int] = []
        self.usage_requests: list[dict[str, str]] = []
        self.connections = 0
        self.url = ""
        self._streams: set[asyncio.Queue[bytes | None]] = set()
        self._plays: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None

    # -- serving ------------------------------------------------------------------------------

    async def start(self) -> FakeSpacebot:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/portal/send", self._portal_send)
        app.router.add_post("/api/channels/cancel-process", self._cancel_process)
        app.router.add_get("/api/tasks/{number}", self._task)
        app.router.add_get("/api/usage", self._usage)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self.drop_streams()
        for play in list(self._plays):
            play.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        exempt = request.path in ("/api/health", "/health")
        if self.token and not exempt and request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        if not self.healthy:
            return web.Response(status=503)
        return web.json_response({"status": "ok"})

    # -- the event stream ---------------------------------------------------------------------

    def emit(self, name: str, **fields: Any) -> None:
        """Send one event to every connected client, as Spacebot's `/api/events` frames it."""
        data = json.dumps({"type": JSON_TYPES.get(name, name), **fields})
        frame = f"event: {name}\ndata: {data}\n\n".encode()
        for queue in self._streams:
            queue.put_nowait(frame)

    def drop_streams(self) -> None:
        """End every open event stream (a restart or a network cut, as the client sees it)."""
        for queue in self._streams:
            queue.put_nowait(None)

    @property
    def listeners(self) -> int:
        return len(self._streams)

    @property
    def playing(self) -> bool:
        """Whether a scripted reply is still being emitted."""
        return bool(self._plays)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._streams.add(queue)
        self.connections += 1
        try:
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), self.ping_seconds)
                except TimeoutError:
                    frame = b": ping\n\n"
                if frame is None:
                    break
                await response.write(frame)
        except ConnectionResetError:
            pass  # the client went away
        finally:
            self._streams.discard(queue)
        return response

    # -- sending and the scripted reply -------------------------------------------------------

    async def _portal_send(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.sent.append(body)
        self.send_auth.append(request.headers.get("Authorization"))
        if self.send_status != 200:
            return web.Response(status=self.send_status)  # Spacebot answers errors with a bare status
        if self.replying:
            play = asyncio.create_task(self.play_reply(body["agent_id"], body["session_id"], body))
            self._plays.add(play)
            play.add_done_callback(self._plays.discard)
        return web.json_response({"ok": True})

    async def play_reply(self, agent_id: str, session_id: str, body: dict[str, Any]) -> None:
        """What Spacebot emits for one portal message: the inbound echo, typing on, a worker
        running a tool, a thinking branch, the streamed reply, the whole reply, typing off."""
        where = {"agent_id": agent_id, "channel_id": session_id}
        worker_id, branch_id, call_id = str(uuid.uuid4()), str(uuid.uuid4()), f"call_{uuid.uuid4().hex[:8]}"
        await asyncio.sleep(0.01)
        self.emit(
            "inbound_message",
            **where,
            sender_name=body.get("sender_name"),
            sender_id=body.get("sender_name"),
            text=body.get("message"),
        )
        self.emit("typing_state", **where, is_typing=True)
        self.emit("worker_started", **where, worker_id=worker_id, task="look up the date", worker_type="builtin")
        self.emit("worker_status", **where, worker_id=worker_id, status="running date -u")
        tool = {"process_type": "worker", "process_id": worker_id, "call_id": call_id, "tool_name": "shell"}
        self.emit("tool_started", **where, **tool, args=json.dumps({"command": "date -u"}))
        await asyncio.sleep(0.01)
        self.emit("tool_completed", **where, **tool, result=TOOL_RESULT)
        self.emit("worker_completed", **where, worker_id=worker_id, result=f"It is {TOOL_RESULT}", success=True)
        self.emit("branch_started", **where, branch_id=branch_id, description="Plan the answer")
        self.emit("branch_completed", **where, branch_id=branch_id, conclusion="Greet, then give the day.")
        for end in range(self.delta_chars, len(self.reply) + self.delta_chars, self.delta_chars):
            piece = self.reply[end - self.delta_chars : end]
            self.emit("outbound_message_delta", **where, text_delta=piece, aggregated_text=self.reply[:end])
            await asyncio.sleep(self.delta_pause)
        self.emit("outbound_message", **where, text=self.reply)
        self.emit("typing_state", **where, is_typing=False)

    async def _cancel_process(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.cancels.append(body)
        if body["process_type"] != "worker":  # a branch: Spacebot ends it without a worker event
            return web.json_response({"success": True, "message": f"Branch {body['process_id']} cancelled"})
        self.emit(
            "worker_completed",
            channel_id=body["channel_id"],
            agent_id=body["channel_id"].split(":")[2],
            worker_id=body["process_id"],
            result="Worker cancelled: cancelled by user",
            success=False,
        )
        return web.json_response({"success": True, "message": f"Worker {body['process_id']} cancelled"})

    # -- tasks and usage ----------------------------------------------------------------------

    async def _task(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        self.task_requests.append(number)
        if number not in self.tasks:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({"task": self.tasks[number]})

    async def _usage(self, request: web.Request) -> web.Response:
        self.usage_requests.append(dict(request.query))
        if self.usage_status != 200:
            return web.Response(status=self.usage_status)
        agent_id = request.query.get("agent_id")
        rows = [row for agent, found in self.usage.items() if agent_id in (None, agent) for row in found]
        total: dict[str, Any] = {name: sum(int(row.get(name, 0)) for row in rows) for name in USAGE_COUNTERS}
        total["cost_status"] = self.cost_status
        if self.cost_status != "unknown":
            total["estimated_cost_usd"] = sum(float(row.get("estimated_cost_usd", 0.0)) for row in rows)
        answer: dict[str, Any] = {"total": total}
        if rows:
            answer["by_model"] = rows
        return web.json_response(answer)
