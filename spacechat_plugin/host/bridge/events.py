"""The bridge's side of Spacebot's event stream: conversations, turns, and each event's mapping
to the hooks (see bridge.py for the why; docs/bridge.md for the table).

`BridgeEvents` is the part of `BridgeHost` that turns one Spacebot event into hook calls; it
keeps per-conversation state (the open turn, pending message ids, running workers).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...events import new_id
from ..hooks import HookRunner

log = logging.getLogger("spacechat.host.bridge")

SESSION_PREFIX = "portal:chat:"
MODEL = PROVIDER = "spacebot"
RESULT_CHARS = 4000
STATUS_CHARS = 256
DETAIL_CHARS = 300
MAX_CONVERSATIONS = 10_000

Payload = dict[str, Any]


@dataclass(frozen=True)
class Conversation:
    """One agent in one Spacechat thread; Spacebot knows it as a portal session."""

    agent_id: str
    channel_id: str
    thread_id: str

    @property
    def session_id(self) -> str:
        return f"{SESSION_PREFIX}{self.agent_id}:{self.channel_id}:{self.thread_id}"

    @property
    def place(self) -> dict[str, str]:
        return {"agent_id": self.agent_id, "channel_id": self.channel_id, "thread_id": self.thread_id}

    @classmethod
    def parse(cls, session_id: str) -> Conversation | None:
        if not session_id.startswith(SESSION_PREFIX):
            return None
        parts = session_id[len(SESSION_PREFIX) :].rsplit(":", 2)
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


@dataclass
class Turn:
    turn_id: str
    started: float = field(default_factory=time.monotonic)
    text: str = ""
    ttft_ms: int | None = None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


@dataclass
class Input:
    """What was last sent into a conversation, kept for retry_turn."""

    text: str
    sender_name: str
    message_ids: list[str]


@dataclass
class ConversationState:
    pending: list[str] = field(default_factory=list)  # message ids delivered since the last turn began
    last_input: Input | None = None
    sent_at: float = 0.0
    turn: Turn | None = None
    last_turn_id: str | None = None
    next_turn_id: str | None = None  # preset by retry_turn, so its caller learns the id
    workers: set[str] = field(default_factory=set)
    branches: set[str] = field(default_factory=set)
    # A stopped reply: what Spacebot still streams for it is dropped until its typing turns off.
    discarding: bool = False


ConversationHandler = Callable[[Conversation, ConversationState, Payload], Awaitable[None]]


class SSEParser:
    """Server-Sent Events by the spec's field rules: `event:` names the message (default
    `message`), `data:` lines join with newlines, comments (Spacebot's `: ping`) are skipped.
    Bytes are split here rather than by aiohttp's readline, whose line limit a long tool result
    could exceed."""

    def __init__(self) -> None:
        self._buffer = b""
        self._name = "message"
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        messages: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if self._data:
                    messages.append((self._name, "\n".join(self._data)))
                self._name, self._data = "message", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self._name = value
            elif name == "data":
                self._data.append(value)
        return messages


def reason(exc: BaseException) -> str:
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:DETAIL_CHARS]


def _arguments(args: Any) -> dict[str, Any]:
    """Spacebot sends tool arguments as a JSON string cut at 2,000 bytes; keep what parses."""
    if isinstance(args, Mapping):
        return dict(args)
    try:
        parsed = json.loads(str(args or "{}"))
    except ValueError:
        return {"raw": str(args)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _worker_of(payload: Payload) -> str | None:
    """The worker an event comes from: worker events name it; tool events name their process."""
    if payload.get("worker_id"):
        return str(payload["worker_id"])
    return str(payload.get("process_id")) if payload.get("process_type") == "worker" else None


def _call_key(payload: Payload) -> tuple[str, str]:
    """Pairs a tool call's start with its end: by call id, or by process and tool in order."""
    return str(payload.get("process_id", "")), str(payload.get("call_id") or payload.get("tool_name", ""))


def _outcome(payload: Payload) -> str:
    if payload.get("success"):
        return "succeeded"
    if str(payload.get("result", "")).startswith("Worker cancelled"):
        return "cancelled"
    return "failed"


class BridgeEvents:
    """Spacebot events to hook calls, per conversation. Mixed into BridgeHost."""

    hooks: HookRunner
    agents_by_id: Mapping[str, Any]
    conversations: OrderedDict[Conversation, ConversationState]
    worker_homes: dict[str, Conversation]
    tool_calls: dict[tuple[str, str], list[tuple[str, float]]]
    tasks_seen: dict[int, dict[str, Any]]
    _conversation_events: dict[str, ConversationHandler]
    _instance_events: dict[str, Callable[[Payload], Awaitable[None]]]

    # Provided by BridgeHost: the HTTP side.
    async def _send(self, conversation: Conversation, sent: Input) -> None:
        raise NotImplementedError

    async def _fetch_task(self, number: int) -> dict[str, Any] | None:
        raise NotImplementedError

    # -- conversations and turns --------------------------------------------------------------

    def _state(self, conversation: Conversation) -> ConversationState:
        state = self.conversations.get(conversation)
        if state is None:
            state = self.conversations[conversation] = ConversationState()
            self._forget_idle()
        self.conversations.move_to_end(conversation)
        return state

    def _forget_idle(self) -> None:
        """Bound the memory a long-running bridge keeps: drop the least recently used quiet
        conversations (a retry there then finds nothing to retry)."""
        excess = len(self.conversations) - MAX_CONVERSATIONS
        for conversation, state in list(self.conversations.items()):
            if excess <= 0:
                break
            if state.turn is None and not state.workers:
                del self.conversations[conversation]
                excess -= 1

    async def _submit(self, conversation: Conversation, sent: Input) -> None:
        """Send into a conversation; a send Spacebot did not take becomes a failed turn, as a
        provider failure does in the embedded host, so the person sees it and may retry."""
        state = self._state(conversation)
        state.discarding = False
        state.pending.extend(sent.message_ids)
        state.last_input, state.sent_at = sent, time.monotonic()
        try:
            await self._send(conversation, sent)
        except RuntimeError as exc:
            log.warning("could not hand a message to Spacebot: %s", exc)
            if state.turn is None:
                await self._open_turn(conversation, state)
                await self._fail_turn(conversation, state, str(exc))

    def _turn_id(self, state: ConversationState) -> str:
        """The turn an activity belongs to: the open one, else the last (Spacebot's workers
        outlive the turn that started them)."""
        if state.turn is not None:
            return state.turn.turn_id
        if state.last_turn_id is None:
            state.last_turn_id = new_id("turn")
        return state.last_turn_id

    async def _open_turn(self, conversation: Conversation, state: ConversationState) -> Turn:
        if state.turn is not None:
            return state.turn
        turn = state.turn = Turn(state.next_turn_id or new_id("turn"))
        state.next_turn_id, state.last_turn_id = None, turn.turn_id
        message_ids, state.pending = state.pending, []
        await self.hooks.call(
            "spacebot_turn_started",
            **conversation.place,
            turn_id=turn.turn_id,
            model=MODEL,
            provider=PROVIDER,
            message_ids=message_ids,
        )
        return turn

    async def _stream_text(self, conversation: Conversation, state: ConversationState, delta: str) -> None:
        turn = await self._open_turn(conversation, state)
        if not delta:
            return
        if turn.ttft_ms is None:
            turn.ttft_ms = turn.elapsed_ms()
        turn.text += delta
        await self.hooks.call(
            "spacebot_text_delta",
            agent_id=conversation.agent_id,
            turn_id=turn.turn_id,
            delta=delta,
            aggregated_text=turn.text,
        )

    async def _complete_turn(self, conversation: Conversation, state: ConversationState, turn: Turn, text: str) -> None:
        if text.startswith(turn.text) and len(text) > len(turn.text):
            # The reply holds text that never streamed: stream it, so deltas add up to the reply.
            # (A reply that disagrees with what streamed wins: the plugin keeps the final text.)
            await self._stream_text(conversation, state, text[len(turn.text) :])
        state.turn = None
        await self.hooks.call(
            "spacebot_turn_completed",
            agent_id=conversation.agent_id,
            turn_id=turn.turn_id,
            text=text,
            blocks=None,
            ttft_ms=turn.ttft_ms,
            duration_ms=turn.elapsed_ms(),
        )

    async def _fail_turn(self, conversation: Conversation, state: ConversationState, error: str) -> None:
        turn, state.turn = state.turn, None
        if turn is None:
            return
        await self.hooks.call(
            "spacebot_turn_failed",
            agent_id=conversation.agent_id,
            turn_id=turn.turn_id,
            error=error,
            retryable=True,
            duration_ms=turn.elapsed_ms(),
        )

    # -- events -------------------------------------------------------------------------------

    async def _dispatch(self, name: str, data: str) -> None:
        in_conversation = self._conversation_events.get(name)
        instance_wide = self._instance_events.get(name)
        if in_conversation is None and instance_wide is None:
            return  # notifications, cortex chat, config reloads...: nothing in the contract
        try:
            payload = json.loads(data)
            if not isinstance(payload, dict):
                return
            if instance_wide is not None:
                await instance_wide(payload)
            elif in_conversation is not None and (found := self._locate(payload)) is not None:
                await in_conversation(*found, payload)
        except Exception:
            # One malformed or unexpected event must not take the link down with it.
            log.exception("could not handle the Spacebot event %s", name)

    def _locate(self, payload: Payload) -> tuple[Conversation, ConversationState] | None:
        """The conversation an event belongs to, by its session id or else by the worker that
        sent it; None for conversations that are not Spacechat's."""
        conversation = Conversation.parse(str(payload.get("channel_id") or ""))
        worker_id = _worker_of(payload)
        if conversation is None and worker_id is not None:
            conversation = self.worker_homes.get(worker_id)
        if conversation is None or conversation.agent_id not in self.agents_by_id:
            return None
        return conversation, self._state(conversation)

    async def _on_typing(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if state.discarding:
            state.discarding = bool(payload.get("is_typing"))
            return
        if payload.get("is_typing"):
            await self._open_turn(conversation, state)
        elif state.turn is not None:
            await self._complete_turn(conversation, state, state.turn, state.turn.text)

    async def _on_text_delta(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if state.discarding:
            return
        delta = payload.get("text_delta")
        if delta is None:
            aggregated = str(payload.get("aggregated_text") or "")
            known = state.turn.text if state.turn is not None else ""
            delta = aggregated[len(known) :] if aggregated.startswith(known) else ""
        await self._stream_text(conversation, state, str(delta))

    async def _on_reasoning_delta(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        turn = await self._open_turn(conversation, state)
        delta = str(payload.get("text_delta") or payload.get("delta") or payload.get("text") or "")
        if delta:
            await self.hooks.call(
                "spacebot_reasoning_delta", agent_id=conversation.agent_id, turn_id=turn.turn_id, delta=delta
            )

    async def _on_outbound(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if state.discarding:
            return  # the rest of a reply someone stopped
        text = str(payload.get("text", ""))
        if state.turn is not None:
            await self._complete_turn(conversation, state, state.turn, text)
        else:
            await self.hooks.call("spacebot_outbound_message", **conversation.place, text=text, blocks=None)

    def _tool_ids(self, conversation: Conversation, state: ConversationState, payload: Payload) -> dict[str, Any]:
        return {
            **conversation.place,
            "turn_id": self._turn_id(state),
            "worker_id": _worker_of(payload),
            "tool": str(payload.get("tool_name", "")),
        }

    async def _on_tool_started(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        call_id = str(payload.get("call_id") or new_id("call"))
        self.tool_calls.setdefault(_call_key(payload), []).append((call_id, time.monotonic()))
        arguments = _arguments(payload.get("args"))
        await self.hooks.call(
            "spacebot_tool_started",
            **self._tool_ids(conversation, state, payload),
            call_id=call_id,
            arguments=arguments,
        )

    async def _on_tool_completed(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        key = _call_key(payload)
        started = self.tool_calls.get(key) or [(str(payload.get("call_id") or new_id("call")), time.monotonic())]
        call_id, began = started.pop(0)
        if not started:
            self.tool_calls.pop(key, None)
        ids = {**self._tool_ids(conversation, state, payload), "call_id": call_id}
        ids["duration_ms"] = int((time.monotonic() - began) * 1000)
        result = str(payload.get("result", ""))[:RESULT_CHARS]
        if result.startswith("Toolset error:"):  # how Spacebot's hook tells a tool error
            await self.hooks.call("spacebot_tool_failed", **ids, error=result)
        else:
            await self.hooks.call("spacebot_tool_completed", **ids, result=result)

    async def _on_worker_started(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        worker_id = str(payload["worker_id"])
        state.workers.add(worker_id)
        self.worker_homes[worker_id] = conversation
        await self.hooks.call(
            "spacebot_worker_started",
            **conversation.place,
            worker_id=worker_id,
            task=str(payload.get("task", "")),
            worker_type=str(payload.get("worker_type") or "builtin"),
            interactive=bool(payload.get("interactive", False)),
        )

    async def _on_worker_status(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        await self.hooks.call(
            "spacebot_worker_status",
            agent_id=conversation.agent_id,
            worker_id=str(payload["worker_id"]),
            state="running",  # Spacebot's status line is free text; waiting comes as worker_idle
            status=str(payload.get("status", ""))[:STATUS_CHARS],
        )

    async def _on_worker_idle(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        await self.hooks.call(
            "spacebot_worker_idle", agent_id=conversation.agent_id, worker_id=str(payload["worker_id"])
        )

    async def _on_worker_completed(
        self, conversation: Conversation, state: ConversationState, payload: Payload
    ) -> None:
        worker_id = str(payload["worker_id"])
        state.workers.discard(worker_id)
        self.worker_homes.pop(worker_id, None)
        outcome = _outcome(payload)
        await self.hooks.call(
            "spacebot_worker_completed",
            agent_id=conversation.agent_id,
            worker_id=worker_id,
            outcome=outcome,
            result=str(payload.get("result", ""))[:RESULT_CHARS],
            success=outcome in ("succeeded", "partial"),
        )

    async def _on_branch_started(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        description = str(payload.get("description", ""))
        state.branches.add(str(payload["branch_id"]))
        await self.hooks.call(
            "spacebot_branch_started",
            **conversation.place,
            branch_id=str(payload["branch_id"]),
            description=description,
        )

    async def _on_branch_completed(
        self, conversation: Conversation, state: ConversationState, payload: Payload
    ) -> None:
        conclusion = str(payload.get("conclusion", ""))
        state.branches.discard(str(payload["branch_id"]))
        await self.hooks.call(
            "spacebot_branch_completed",
            **conversation.place,
            branch_id=str(payload["branch_id"]),
            conclusion=conclusion,
        )

    async def _on_task_updated(self, payload: Payload) -> None:
        """Tasks are instance-wide, not per conversation: every change is passed on, with the
        task as `/api/tasks/{n}` returns it. A deleted task can no longer be fetched: it goes
        with the last copy seen (status included), or Spacebot's own status `deleted`."""
        number = int(payload["task_number"])
        action = str(payload.get("action") or "updated")
        if action == "deleted":
            task = self.tasks_seen.pop(number, None) or {"task_number": number, "status": payload.get("status")}
        else:
            task = await self._fetch_task(number) or {"task_number": number, "status": payload.get("status")}
            self.tasks_seen[number] = task
        await self.hooks.call(
            "spacebot_task_updated",
            agent_id=payload.get("agent_id") or task.get("assigned_agent_id"),
            task_number=number,
            status=str(task.get("status") or payload.get("status") or ""),
            action=action,
            task=task,
        )

    async def _on_lagged(self, payload: Payload) -> None:
        log.warning("Spacebot's event stream skipped %s events: replies may be incomplete", payload.get("skipped"))
