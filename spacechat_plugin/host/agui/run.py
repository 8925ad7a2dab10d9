"""One Spacechat turn of an AG-UI agent: its runs, and their events as the same hooks every host
calls (docs/agui.md has the table).

A turn is one run, or several: a run that ends with interrupts (`RUN_FINISHED` with the
`interrupt` outcome) waits for their answers, from `spacebot_before_tool_call` (an approval
policy) or from people (an approval card, a question card: the worker shows `waiting_for_input`
meanwhile and the channel serves its other threads), then the next run carries them as `resume`;
a run that leaves calls of Spacechat's own tools unanswered (the client-side tools it was offered)
has them run in workers, with Spacechat's approvals, and the next run carries their results.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...events import new_id
from ..embedded.providers import ToolCall, TurnError
from ..embedded.runtime import ChannelContext, TurnView
from ..embedded.workers import RESULT_CHARS, Worker, run_worker
from .client import AguiAgent, Thread

log = logging.getLogger("spacechat.host.agui")

MAX_RUNS = 8  # runs in one turn (each interrupt or round of client-side tools starts one more)


@dataclass
class Call:
    name: str
    parent: str | None
    args: str = ""
    started: float = field(default_factory=time.monotonic)
    client_side: bool = False


@dataclass
class Ending:
    """How a run ended: what it waits for (interrupts), or the client-side calls it left open."""

    interrupts: list[Any] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    finished: bool = False


def _kind(event: Any) -> str:
    return str(getattr(event.type, "value", event.type))


def _arguments(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text or "{}")
    except ValueError:
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _payload(schema: Mapping[str, Any] | None, answer: str) -> Any:
    """An answer in the shape an interrupt's `responseSchema` asks for: its one string property
    when it has one, else the text itself."""
    properties = (schema or {}).get("properties") or {}
    strings = [name for name, spec in properties.items() if isinstance(spec, Mapping) and spec.get("type") == "string"]
    return {strings[0]: answer} if len(strings) == 1 else answer


def _is_approval(interrupt: Any) -> bool:
    properties = (interrupt.response_schema or {}).get("properties") or {}
    return bool(interrupt.tool_call_id) or "approved" in properties


class AguiRun:
    def __init__(self, channel: ChannelContext, turn: TurnView, agent: AguiAgent, inbound: Sequence[Mapping[str, str]]):
        self.channel, self.turn, self.agent = channel, turn, agent
        self.hooks = channel.host.hooks
        self.base = turn.base
        self.thread: Thread = agent.thread(turn.base["agent_id"], turn.base["channel_id"], turn.base["thread_id"])
        seen = {m.get("id") for m in self.thread.messages}
        for message in inbound:
            if message["id"] in seen:
                continue  # a retried turn: the agent already has these messages
            self.thread.messages.append(
                {"id": message["id"], "role": "user", "content": message["text"], "name": message["author"][:64]}
            )
        self.calls: dict[str, Call] = {}
        self.denied: dict[str, str] = {}
        self.tools = list(channel.host.tools.values())
        self.new_message = False
        self.handlers = {
            "TEXT_MESSAGE_START": self._text_start,
            "TEXT_MESSAGE_CONTENT": self._text,
            "TEXT_MESSAGE_CHUNK": self._text,
            "REASONING_MESSAGE_CONTENT": self._reasoning,
            "REASONING_MESSAGE_CHUNK": self._reasoning,
            "TOOL_CALL_START": self._tool_start,
            "TOOL_CALL_ARGS": self._tool_args,
            "TOOL_CALL_CHUNK": self._tool_chunk,
            "TOOL_CALL_END": self._tool_end,
            "TOOL_CALL_RESULT": self._tool_result,
            "STEP_STARTED": self._step,
            "STEP_FINISHED": self._step,
            "STATE_SNAPSHOT": self._state,
            "STATE_DELTA": self._state,
            "MESSAGES_SNAPSHOT": self._messages,
        }

    # -- the turn -----------------------------------------------------------------------------

    async def run(self) -> None:
        resume: list[dict[str, Any]] | None = None
        for _ in range(MAX_RUNS):
            ending = await self._one_run(resume)
            resume = None
            if ending.interrupts:
                resume = [await self._answer(interrupt) for interrupt in ending.interrupts]
            elif ending.pending:
                await self._client_tools(ending.pending)
            else:
                self.thread.trim()
                return
        raise TurnError(f"the agent needed more than {MAX_RUNS} runs for one turn", retryable=False)

    async def _one_run(self, resume: list[dict[str, Any]] | None) -> Ending:
        ending = Ending()
        body = self.agent.run_input(
            thread_id=self.base["thread_id"],
            run_id=new_id("run"),
            thread=self.thread,
            tools=[tool.spec for tool in self.tools],
            resume=resume,
            context=[
                {"description": "The person's conversation", "value": f"Spacechat thread {self.base['thread_id']}"}
            ],
        )
        async for event in self.agent.run(body):
            kind = _kind(event)
            if kind == "RUN_ERROR":
                raise TurnError(event.message or "the agent's run failed", retryable=True)
            if kind == "RUN_FINISHED":
                await self._finished(event, ending)
                break
            handler = self.handlers.get(kind)
            if handler is not None:
                await handler(event)
        if not ending.finished:
            raise TurnError("the agent's run ended without RUN_FINISHED", retryable=True)
        return ending

    async def _finished(self, event: Any, ending: Ending) -> None:
        ending.finished = True
        for usage in event.usage or []:
            await self._usage(usage)
        outcome = event.outcome
        if outcome is not None and getattr(outcome, "type", "") == "interrupt":
            ending.interrupts = list(outcome.interrupts)
            return
        named = list(getattr(outcome, "pending_tool_call_ids", None) or [])
        ending.pending = named or [cid for cid, call in self.calls.items() if call.client_side]
        ending.pending = [cid for cid in ending.pending if cid in self.calls and self.calls[cid].client_side]

    async def _usage(self, usage: Any) -> None:
        cached, written = usage.cached_input_tokens or 0, usage.cache_write_input_tokens or 0
        await self.hooks.call(
            "spacebot_llm_usage",
            **self.base,
            process_type="channel",
            model=usage.model or self.channel.agent.model,
            provider=usage.provider or self.agent.name,
            input_tokens=max(0, (usage.input_tokens or 0) - cached - written),
            output_tokens=usage.output_tokens or 0,
            cache_read_tokens=cached,
            cache_write_tokens=written,
            reasoning_tokens=usage.reasoning_tokens or 0,
            cost_usd=None,
        )

    # -- text and reasoning -------------------------------------------------------------------

    def _assistant(self, message_id: str | None) -> dict[str, Any]:
        """The assistant message of the thread's history with this id (made when new)."""
        history: list[dict[str, Any]] = self.thread.messages
        found: dict[str, Any] | None = next(
            (m for m in reversed(history) if m.get("role") == "assistant" and m.get("id") == message_id), None
        )
        if found is None:
            found = {"id": message_id or new_id("msg"), "role": "assistant", "content": ""}
            history.append(found)
        return found

    async def _text_start(self, event: Any) -> None:
        self._assistant(event.message_id)
        self.new_message = True

    async def _text(self, event: Any) -> None:
        delta = event.delta or ""
        if not delta:
            return
        message = self._assistant(getattr(event, "message_id", None))
        message["content"] = (message.get("content") or "") + delta
        if self.new_message and self.turn.text and not self.turn.text.endswith("\n"):
            delta = "\n\n" + delta  # a second message of the turn starts a new paragraph
        self.new_message = False
        if self.turn.ttft_ms is None:
            self.turn.ttft_ms = self.turn.elapsed_ms()
        self.turn.text += delta
        await self.hooks.call(
            "spacebot_text_delta",
            agent_id=self.base["agent_id"],
            turn_id=self.base["turn_id"],
            delta=delta,
            aggregated_text=self.turn.text,
        )

    async def _reasoning(self, event: Any) -> None:
        if event.delta:
            await self.hooks.call(
                "spacebot_reasoning_delta",
                agent_id=self.base["agent_id"],
                turn_id=self.base["turn_id"],
                delta=event.delta,
            )

    # -- tool calls ---------------------------------------------------------------------------

    async def _tool_start(self, event: Any) -> None:
        name = event.tool_call_name
        client_side = name in self.channel.host.tools
        self.calls[event.tool_call_id] = Call(name, event.parent_message_id, client_side=client_side)
        message = self._assistant(event.parent_message_id)
        entry = {"id": event.tool_call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        message.setdefault("toolCalls", []).append(entry)
        if not message.get("content"):
            message.pop("content", None)

    async def _tool_args(self, event: Any) -> None:
        call = self.calls.get(event.tool_call_id)
        if call is None:
            return
        call.args += event.delta or ""
        for message in reversed(self.thread.messages):
            for entry in message.get("toolCalls") or []:
                if entry["id"] == event.tool_call_id:
                    entry["function"]["arguments"] = call.args
                    return

    async def _tool_chunk(self, event: Any) -> None:
        if event.tool_call_id and event.tool_call_id not in self.calls and event.tool_call_name:
            await self._tool_start(event)
        if event.tool_call_id and event.delta:
            await self._tool_args(event)

    def _tool_ids(self, call_id: str, call: Call) -> dict[str, Any]:
        return {**self.base, "worker_id": None, "call_id": call_id, "tool": call.name}

    async def _tool_end(self, event: Any) -> None:
        call = self.calls.get(event.tool_call_id)
        if call is None or call.client_side:
            return  # Spacechat's own tools run in workers, which call the tool hooks
        call.started = time.monotonic()
        args = _arguments(call.args)
        await self.hooks.call("spacebot_tool_started", **self._tool_ids(event.tool_call_id, call), arguments=args)

    async def _tool_result(self, event: Any) -> None:
        content = event.content if isinstance(event.content, str) else json.dumps(event.content, default=str)
        self.thread.messages.append(
            {"id": event.message_id, "role": "tool", "toolCallId": event.tool_call_id, "content": content}
        )
        call = self.calls.get(event.tool_call_id)
        if call is None:
            return
        ids = {**self._tool_ids(event.tool_call_id, call), "duration_ms": int((time.monotonic() - call.started) * 1000)}
        if event.tool_call_id in self.denied:
            await self.hooks.call("spacebot_tool_failed", **ids, error=self.denied[event.tool_call_id])
        else:
            await self.hooks.call("spacebot_tool_completed", **ids, result=content[:RESULT_CHARS])

    async def _client_tools(self, pending: list[str]) -> None:
        """The calls of Spacechat's own tools the run left open: each in a worker (approvals
        included), its result a tool message of the next run."""
        for call_id in pending:
            call = self.calls[call_id]
            result = await run_worker(self.channel, ToolCall(call_id, call.name, _arguments(call.args)), self.base)
            self.thread.messages.append({"id": new_id("msg"), "role": "tool", "toolCallId": call_id, "content": result})
            call.client_side = False  # answered

    # -- steps and state ----------------------------------------------------------------------

    async def _step(self, event: Any) -> None:
        status = event.step_name if _kind(event) == "STEP_STARTED" else ""
        await self.hooks.call(
            "spacebot_status_update",
            agent_id=self.base["agent_id"],
            channel_id=self.base["channel_id"],
            thread_id=self.base["thread_id"],
            turn_id=self.base["turn_id"],
            status=status,
        )

    async def _state(self, event: Any) -> None:
        """The agent's shared state (the agent's status page shows it; the next run sends it back)."""
        try:
            if _kind(event) == "STATE_SNAPSHOT":
                self.thread.state = (
                    dict(event.snapshot) if isinstance(event.snapshot, Mapping) else {"value": event.snapshot}
                )
            else:
                self.thread.apply_delta(event.delta)
        except Exception as exc:  # a patch that does not apply: the state stays as it was
            log.warning("AG-UI %s skipped: %s", _kind(event), exc)

    async def _messages(self, event: Any) -> None:
        self.thread.messages = [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in event.messages]

    # -- interrupts ---------------------------------------------------------------------------

    async def _answer(self, interrupt: Any) -> dict[str, Any]:
        """One interrupt's `ResumeEntry`: an approval from the approval hook or from people (a
        permission card), anything else as a question to people."""
        call = self.calls.get(interrupt.tool_call_id or "")
        tool = call.name if call is not None else str(interrupt.reason)
        task = f"approve {tool}" if _is_approval(interrupt) else str(interrupt.message or interrupt.reason)[:200]
        worker = Worker(self.channel, self.base, task, interactive=True)
        await worker.start()
        try:
            if _is_approval(interrupt):
                payload = await self._approval(worker, interrupt, tool, call)
            else:
                payload = await self._question(worker, interrupt)
        except BaseException:
            await worker.finish("cancelled", "Worker cancelled: the turn was stopped")
            raise
        return {"interruptId": interrupt.id, "status": "resolved", "payload": payload}

    async def _approval(self, worker: Worker, interrupt: Any, tool: str, call: Call | None) -> dict[str, Any]:
        arguments = _arguments(call.args) if call is not None else {}
        ids = {**self.base, "worker_id": worker.info.worker_id, "call_id": interrupt.tool_call_id or interrupt.id}
        decision = await worker.wait(
            self.hooks.first("spacebot_before_tool_call", **ids, tool=tool, arguments=arguments),
            f"waiting for approval of {tool}",
        )
        if decision and decision.get("decision") in ("allow", "deny", "skip"):
            approved, reason = decision["decision"] == "allow", str(decision.get("reason") or "")
        else:
            answer = self.channel.host.expect_answer(interrupt.id)
            description = interrupt.message or f"{self.channel.agent.name} wants to run {tool} with {arguments}"
            await self.hooks.call(
                "spacebot_worker_permission_asked",
                **worker.ids,
                permission_id=interrupt.id,
                description=str(description),
                patterns=[tool],
            )
            reply = await worker.wait(answer, f"asking permission to run {tool}", grace=0)
            approved, reason = bool(reply.get("allow")), "" if reply.get("allow") else "refused by people"
        if not approved:
            self.denied[interrupt.tool_call_id or interrupt.id] = f"Tool denied: {reason or 'no reason given'}"
        await worker.finish("succeeded" if approved else "blocked", "approved" if approved else f"denied: {reason}")
        return {"approved": True} if approved else {"approved": False, **({"reason": reason} if reason else {})}

    async def _question(self, worker: Worker, interrupt: Any) -> Any:
        answer = self.channel.host.expect_answer(interrupt.id)
        question = {
            "question": str(interrupt.message or interrupt.reason)[:500],
            "header": self.channel.agent.name,
            "options": [],
        }
        await self.hooks.call(
            "spacebot_worker_question_asked", **worker.ids, question_id=interrupt.id, questions=[question]
        )
        reply = await worker.wait(answer, "waiting for an answer", grace=0)
        text = str(reply.get("answer") or "").strip()
        await worker.finish("succeeded", f"The answer was: {text}" if text else "No answer was given")
        return _payload(interrupt.response_schema, text)
