"""A local server that speaks the Rust Spacebot's HTTP API as the bridge uses it.

It stands in for Spacebot (a Rust program that cannot run here) and follows its source,
spacedriveapp/spacebot v0.6.0 (`ab2c160`), shape for shape; each piece names the file it follows:

- `src/api/server.rs` `api_auth_middleware`: `Authorization: Bearer <token>` on every route but
  `/api/health`, refused with 401 `{"error":"unauthorized"}`. Handlers that return a bare
  `StatusCode` answer errors with an empty body (portal, usage, cancel, `GET /api/tasks/{n}`);
  the task *write* handlers answer `TaskErrorBody` `{"error": "..."}` (`src/api/tasks.rs`).
- `src/api/system.rs` `events_sse`: `event: <name>` + `data: <ApiEvent as JSON>` frames, `: ping`
  keep-alives, and `event: lagged` + `data: {"skipped":N}` when a slow reader lost events.
- `src/api/state.rs` `ApiEvent`: `#[serde(tag = "type", rename_all = "snake_case")]`, so the JSON
  `type` is the variant's snake name, which differs from the SSE name for `worker_status`
  (`worker_status_update`) and `opencode_part_updated` (`open_code_part_updated`). `EVENT_FIELDS`
  below lists every variant's fields; `emit` refuses any other shape.
- `src/api/portal.rs`: `POST /api/portal/send` answers `{"ok":true}` at once (404 for an unknown
  agent) and the reply comes later on the stream; `GET /api/portal/history` answers
  `[{id, role, content}]`, oldest first, the last `limit` (default 100, at most 200).
- `src/main.rs`: the `inbound_message` echo of a portal send (`sender_id` = `sender_name`,
  `system: false`); `forward_sse_event`: `typing_state` and `outbound_message` per conversation.
- `src/agent/channel.rs`: a failed model call replies "I encountered an error: ..." then stops
  typing; `src/tools/ask.rs`: the `ask` tool's numbered-list text and its JSON result.
- `src/api/state.rs` `is_hidden_channel_tool`: the channel's routing tools (`reply`,
  `spawn_worker`, `branch`, ...) have `tool_started` / `tool_completed` events too.
- `src/api/tasks.rs`, `src/tasks/store.rs` (`Task`, `can_transition`), `src/tasks/comments.rs`,
  `src/tasks/revisions.rs`: tasks, their routes, events, comments and revisions
  (fake_spacebot_tasks.py).
- `src/api/usage.rs`: `GET /api/usage` (`UsageResponse`) and
  `GET /api/usage/conversation/{id}` (`UsageTotals`).
- `src/api/channels.rs` `cancel_process`: `{"success":true,"message":...}`, a bare 404 for an
  unknown worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from .fake_spacebot_tasks import FakeTasks, usage_totals

REPLY = "Hello from Spacebot. It is Tuesday, and the plan is ready."
TOOL_RESULT = "Tue Jan  6 12:00:00 UTC 2026"
THINKING = "The person wants the day; a worker can run date."

# `ApiEvent` (src/api/state.rs): every variant's fields, by SSE event name (src/api/system.rs).
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "inbound_message": ("agent_id", "channel_id", "sender_name", "sender_id", "text", "system"),
    "outbound_message": ("agent_id", "channel_id", "text"),
    "typing_state": ("agent_id", "channel_id", "is_typing"),
    "outbound_message_delta": ("agent_id", "channel_id", "text_delta", "aggregated_text"),
    "reasoning_delta": ("agent_id", "channel_id", "reasoning_delta", "aggregated_reasoning"),
    "worker_started": ("agent_id", "channel_id", "worker_id", "task", "worker_type", "interactive"),
    "worker_status": ("agent_id", "channel_id", "worker_id", "status"),
    "worker_idle": ("agent_id", "channel_id", "worker_id"),
    "worker_completed": ("agent_id", "channel_id", "worker_id", "result", "success"),
    "branch_started": ("agent_id", "channel_id", "branch_id", "description"),
    "branch_completed": ("agent_id", "channel_id", "branch_id", "conclusion"),
    "compaction_started": ("agent_id", "channel_id", "kind"),
    "compaction_completed": ("agent_id", "channel_id", "success"),
    "tool_started": ("agent_id", "channel_id", "process_type", "process_id", "call_id", "tool_name", "args"),
    "tool_completed": ("agent_id", "channel_id", "process_type", "process_id", "call_id", "tool_name", "result"),
    "config_reloaded": (),
    "agent_message_sent": ("from_agent_id", "to_agent_id", "link_id", "channel_id"),
    "agent_message_received": ("from_agent_id", "to_agent_id", "link_id", "channel_id"),
    "task_updated": ("agent_id", "task_number", "status", "action"),
    "task_revised": ("agent_id", "task_number", "revision", "restored_from"),
    "task_commented": ("agent_id", "task_number", "comment_id", "seq", "author_type"),
    "opencode_part_updated": ("agent_id", "worker_id", "part"),
    "process_text": ("agent_id", "process_type", "process_id", "channel_id", "text"),
    "cortex_chat_message": ("agent_id", "thread_id", "content", "tool_calls"),
    "notification_created": ("notification",),
    "notification_updated": ("id", "read", "dismissed"),
    "chronicle_checkpoint": (
        "agent_id",
        "channel_id",
        "checkpoint_id",
        "seq",
        "level",
        "kind",
        "title",
        "summary",
        "covers_from",
        "covers_to",
        "message_count",
        "created_at",
    ),
    "tool_output": (
        "agent_id",
        "channel_id",
        "process_type",
        "process_id",
        "call_id",
        "tool_name",
        "line",
        "stream",
    ),
}
# The serde renames: the JSON `type` where it differs from the SSE event name.
JSON_TYPES = {"worker_status": "worker_status_update", "opencode_part_updated": "open_code_part_updated"}


def ask_text(question: str, options: list[dict[str, Any]]) -> str:
    """`build_text_fallback` of src/tools/ask.rs: what an ask question looks like as text."""
    lines = [question.rstrip()]
    for index, option in enumerate(options, start=1):
        description = (option.get("description") or "").strip()
        label = option["label"].strip()
        lines.append(f"{index}. {label} — {description}" if description else f"{index}. {label}")
    return "\n".join(lines).rstrip()


class FakeSpacebot:
    def __init__(self, token: str = "", *, ping_seconds: float = 0.5, delta_chars: int = 9) -> None:
        self.token = token
        self.ping_seconds = ping_seconds
        self.delta_chars = delta_chars
        self.agents = {"spacebot", "helper", "main"}
        self.reply = REPLY
        self.replying = True  # play the scripted reply after each portal send
        self.fail_next: str | None = None  # the next reply is a failed model call with this error
        self.healthy = True
        self.accepting = True  # False: /api/events answers 503 (Spacebot restarting)
        self.usage_status = 200
        self.cost_status = "estimated"
        self.usage: dict[str, list[dict[str, Any]]] = {}  # agent id -> by_model rows
        self.conversation_usage: dict[str, dict[str, Any]] = {}  # session id -> UsageTotals counters
        self.tasks = FakeTasks(self.emit)
        self.history: dict[str, list[dict[str, str]]] = {}  # session id -> conversation_messages
        self.sent: list[dict[str, Any]] = []
        self.send_auth: list[str | None] = []
        self.cancels: list[dict[str, Any]] = []
        self.usage_requests: list[dict[str, str]] = []
        self.history_requests: list[dict[str, str]] = []
        self.health_checks = 0  # how many times /api/health was asked: each poll round asks once, first
        self.connections = 0
        self.url = ""
        self._lagging: list[int] | None = None
        self._streams: set[asyncio.Queue[bytes | None]] = set()
        self._plays: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None

    # -- serving ------------------------------------------------------------------------------

    async def start(self) -> FakeSpacebot:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/portal/send", self._portal_send)
        app.router.add_get("/api/portal/history", self._portal_history)
        app.router.add_post("/api/channels/cancel-process", self._cancel_process)
        app.router.add_get("/api/usage", self._usage)
        app.router.add_get("/api/usage/conversation/{conversation_id}", self._conversation_usage)
        self.tasks.routes(app.router)
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
        self.health_checks += 1
        if not self.healthy:
            return web.Response(status=503)
        return web.json_response({"status": "ok"})

    # -- the event stream ---------------------------------------------------------------------

    def emit(self, name: str, **fields: Any) -> None:
        """Send one event to every connected client, as `/api/events` frames it. The fields must
        be exactly the ApiEvent variant's (a test cannot drift from Spacebot's shapes)."""
        expected = EVENT_FIELDS[name]
        assert sorted(fields) == sorted(expected), f"{name}: {sorted(fields)} != ApiEvent's {sorted(expected)}"
        self.emit_raw(name, json.dumps({"type": JSON_TYPES.get(name, name), **fields}))

    def emit_raw(self, name: str, data: str) -> None:
        """Send any frame, well formed or not (for the bridge's handling of bad input)."""
        if self._lagging is not None:
            self._lagging[0] += 1  # the broadcast channel overran: this reader misses it
            return
        frame = f"event: {name}\ndata: {data}\n\n".encode()
        for queue in self._streams:
            queue.put_nowait(frame)

    @contextlib.contextmanager
    def lag(self) -> Iterator[None]:
        """Events emitted inside are lost to the readers, which then get `lagged {"skipped": N}`
        (tokio's broadcast `RecvError::Lagged`, as events_sse reports it)."""
        self._lagging = [0]
        try:
            yield
        finally:
            skipped, self._lagging = self._lagging[0], None
            self.emit_raw("lagged", json.dumps({"skipped": skipped}, separators=(",", ":")))

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
        if not self.accepting:
            return web.Response(status=503)
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

    # -- portal: sending, history, the scripted reply -----------------------------------------

    def log(self, session_id: str, role: str, content: str) -> None:
        """A row of Spacebot's conversation_messages (ConversationLogger, src/conversation/history.rs)."""
        self.history.setdefault(session_id, []).append({"id": str(uuid.uuid4()), "role": role, "content": content})

    async def _portal_send(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.sent.append(body)
        self.send_auth.append(request.headers.get("Authorization"))
        if body.get("agent_id") not in self.agents:
            return web.Response(status=404)  # conversation_store: the agent has no pool
        sender = body.get("sender_name") or "user"
        self.log(body["session_id"], "user", body["message"])
        if self.replying or self.fail_next:
            play = asyncio.create_task(self._play(body["agent_id"], body["session_id"], sender, body["message"]))
            self._plays.add(play)
            play.add_done_callback(self._plays.discard)
        return web.json_response({"ok": True})

    async def _play(self, agent_id: str, session_id: str, sender: str, text: str) -> None:
        where = {"agent_id": agent_id, "channel_id": session_id}
        await asyncio.sleep(0.01)
        self.emit("inbound_message", **where, sender_name=sender, sender_id=sender, text=text, system=False)
        self.emit("typing_state", **where, is_typing=True)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            self.emit("outbound_message", **where, text=f"I encountered an error: {error}")
            self.emit("typing_state", **where, is_typing=False)
            return
        await self.play_reply(agent_id, session_id)

    def channel_tool(self, where: dict[str, Any], name: str, args: dict[str, Any], result: str) -> dict[str, Any]:
        """A channel-process tool call's two events (the second one returned, to emit later)."""
        call = {"process_type": "channel", "process_id": where["channel_id"], "call_id": f"call_{uuid.uuid4().hex[:8]}"}
        self.emit("tool_started", **where, **call, tool_name=name, args=json.dumps(args))
        return {**where, **call, "tool_name": name, "result": result}

    async def play_reply(self, agent_id: str, session_id: str) -> None:
        """What Spacebot emits for one portal message, after the echo and typing on: reasoning,
        a worker (spawned with the hidden `spawn_worker` tool) running a shell tool, a thinking
        branch (the hidden `branch` tool), the reply through the hidden `reply` tool (streamed
        as deltas, then the whole message), typing off."""
        where = {"agent_id": agent_id, "channel_id": session_id}
        worker_id, branch_id, call_id = str(uuid.uuid4()), str(uuid.uuid4()), f"call_{uuid.uuid4().hex[:8]}"
        self.emit("reasoning_delta", **where, reasoning_delta=THINKING[:20], aggregated_reasoning=THINKING[:20])
        self.emit("reasoning_delta", **where, reasoning_delta=THINKING[20:], aggregated_reasoning=THINKING)
        spawn = self.channel_tool(where, "spawn_worker", {"task": "look up the date"}, "Worker spawned")
        self.emit(
            "worker_started",
            **where,
            worker_id=worker_id,
            task="look up the date",
            worker_type="builtin",
            interactive=False,
        )
        self.emit("tool_completed", **spawn)
        self.emit("worker_status", **where, worker_id=worker_id, status="running date -u")
        tool = {"process_type": "worker", "process_id": worker_id, "call_id": call_id, "tool_name": "shell"}
        self.emit("tool_started", **where, **tool, args=json.dumps({"command": "date -u"}))
        self.emit("tool_output", **where, **tool, line=TOOL_RESULT, stream="stdout")
        await asyncio.sleep(0.01)
        self.emit("tool_completed", **where, **tool, result=TOOL_RESULT)
        self.emit(
            "process_text",
            agent_id=agent_id,
            process_type="worker",
            process_id=worker_id,
            channel_id=session_id,
            text="Ran date.",
        )
        self.emit("worker_completed", **where, worker_id=worker_id, result=f"It is {TOOL_RESULT}", success=True)
        branch = self.channel_tool(where, "branch", {"description": "Plan the answer"}, "Branch started")
        self.emit("branch_started", **where, branch_id=branch_id, description="Plan the answer")
        self.emit("branch_completed", **where, branch_id=branch_id, conclusion="Greet, then give the day.")
        self.emit("tool_completed", **branch)
        reply = self.channel_tool(where, "reply", {"content": self.reply}, "Reply delivered")
        for end in range(self.delta_chars, len(self.reply) + self.delta_chars, self.delta_chars):
            piece = self.reply[end - self.delta_chars : end]
            self.emit("outbound_message_delta", **where, text_delta=piece, aggregated_text=self.reply[:end])
            await asyncio.sleep(0.002)
        self.log(session_id, "assistant", self.reply)
        self.emit("outbound_message", **where, text=self.reply)
        self.emit("tool_completed", **reply)
        self.emit("typing_state", **where, is_typing=False)

    def ask(self, agent_id: str, session_id: str, question: str, labels: list[str]) -> str:
        """The `ask` tool (src/tools/ask.rs) in a turn: its call, the question as a message (a
        RichMessage reaches the stream as its text), its result with the question id. Returns it."""
        where = {"agent_id": agent_id, "channel_id": session_id}
        question_id = uuid.uuid4().hex[:8]
        options = [{"label": label} for label in labels]
        self.emit("typing_state", **where, is_typing=True)
        done = self.channel_tool(where, "ask", {"question": question, "options": options, "multi_select": False}, "")
        self.emit("outbound_message", **where, text=ask_text(question, options))
        self.log(session_id, "assistant", f"[ask] {question}")
        message = (
            "Question sent. The answer will arrive as a future message. "
            "End your turn now — do not speculate about the answer."
        )
        output = {"question_id": question_id, "question": question, "options_count": len(options), "message": message}
        self.emit("tool_completed", **{**done, "result": json.dumps(output)})
        self.emit("typing_state", **where, is_typing=False)
        return question_id

    async def _portal_history(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.history_requests.append(query)
        if query.get("agent_id") not in self.agents:
            return web.Response(status=404)
        limit = min(int(query.get("limit", 100)), 200)
        rows = self.history.get(query["session_id"], [])
        return web.json_response(rows[-limit:] if limit > 0 else [])

    async def _cancel_process(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.cancels.append(body)
        if body.get("process_type") == "branch":  # Spacebot ends a branch without a worker event
            return web.json_response({"success": True, "message": f"Branch {body['process_id']} cancelled"})
        if body.get("process_type") != "worker" or body.get("process_id") == "unknown":
            return web.Response(status=404)
        self.emit(
            "worker_completed",
            channel_id=body["channel_id"],
            agent_id=body["channel_id"].split(":")[2],
            worker_id=body["process_id"],
            result="Worker cancelled: cancelled via API",
            success=False,
        )
        return web.json_response({"success": True, "message": f"Worker {body['process_id']} cancelled"})

    # -- usage (src/api/usage.rs) -------------------------------------------------------------

    async def _usage(self, request: web.Request) -> web.Response:
        self.usage_requests.append(dict(request.query))
        if self.usage_status != 200:
            return web.Response(status=self.usage_status)
        agent_id = request.query.get("agent_id")
        rows = [row for agent, found in self.usage.items() if agent_id in (None, agent) for row in found]
        answer: dict[str, Any] = {"total": usage_totals(rows, self.cost_status)}
        if rows:
            answer["by_model"] = rows
        return web.json_response(answer)

    async def _conversation_usage(self, request: web.Request) -> web.Response:
        self.usage_requests.append({"conversation_id": request.match_info["conversation_id"], **request.query})
        if self.usage_status != 200:
            return web.Response(status=self.usage_status)
        found = self.conversation_usage.get(request.match_info["conversation_id"])
        return web.json_response(usage_totals([found] if found else [], self.cost_status if found else "included"))
