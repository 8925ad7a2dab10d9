"""Workers: a tool call (or a question to people) run with Spacebot's states and outcomes.

running -> waiting_for_input (while a decision, a permission or an answer is awaited) -> running
-> done | failed, ending with one outcome: succeeded, failed, timed_out, blocked (denied or
skipped) or cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from ...events import new_id
from .providers import ToolCall
from .runtime import ChannelContext, WorkerInfo

# A decision slower than this means a human is deciding: the worker shows as waiting.
WAITING_AFTER_SECONDS = 0.05
RESULT_CHARS = 4000

T = TypeVar("T")


class Worker:
    """One worker's life: started, maybe waiting, completed exactly once."""

    def __init__(self, channel: ChannelContext, base: Mapping[str, Any], task: str, *, interactive: bool) -> None:
        self.host = channel.host
        self.channel = channel
        self.base = base
        self.interactive = interactive
        self.info = WorkerInfo(
            new_id("worker"),
            channel.agent.id,
            base["channel_id"],
            base["thread_id"],
            task,
            started_at=time.monotonic(),
        )
        self.ids = {"agent_id": channel.agent.id, "worker_id": self.info.worker_id}
        self.finished = False

    async def start(self) -> None:
        self.host.workers[self.info.worker_id] = self.info
        await self.host.hooks.call(
            "spacebot_worker_started",
            agent_id=self.info.agent_id,
            channel_id=self.info.channel_id,
            thread_id=self.info.thread_id,
            worker_id=self.info.worker_id,
            task=self.info.task,
            worker_type="builtin",
            interactive=self.interactive,
        )

    async def wait(self, awaitable: Awaitable[T], status: str, *, grace: float = WAITING_AFTER_SECONDS) -> T:
        """Await `awaitable`; if it takes longer than `grace`, show the worker as waiting for input."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=grace)
        if done:
            return task.result()
        hooks = self.host.hooks
        self.info.state = "waiting_for_input"
        self.channel.park(self.base["thread_id"])
        await hooks.call("spacebot_worker_status", **self.ids, state="waiting_for_input", status=status)
        await hooks.call("spacebot_worker_idle", **self.ids)
        try:
            result = await task
        except asyncio.CancelledError:
            task.cancel()
            raise
        self.info.state = "running"
        await hooks.call("spacebot_worker_status", **self.ids, state="running", status=f"running {self.info.task}")
        return result

    async def finish(self, outcome: str, result: str) -> str:
        if self.finished:
            return result[:RESULT_CHARS]
        self.finished = True
        self.info.state = "done" if outcome in ("succeeded", "partial") else "failed"
        self.info.outcome = outcome
        await self.host.hooks.call(
            "spacebot_worker_completed",
            **self.ids,
            outcome=outcome,
            result=result[:RESULT_CHARS],
            success=outcome in ("succeeded", "partial"),
        )
        self.host.workers.pop(self.info.worker_id, None)
        return result[:RESULT_CHARS]


async def run_worker(
    channel: ChannelContext, call: ToolCall, base: Mapping[str, Any], *, preapproved: bool = False
) -> str:
    """Run one tool call in a worker; return what the model sees as the tool's result.
    `preapproved` skips the approval hook (people already approved this call)."""
    if call.name == "ask_user":
        return await ask_people(channel, call, base)
    worker = Worker(channel, base, f"run {call.name}", interactive=False)
    tool_ids = {**base, "worker_id": worker.info.worker_id, "call_id": call.call_id, "tool": call.name}
    await worker.start()
    try:
        refusal = await _refusal(channel, worker, call, tool_ids, preapproved=preapproved)
        if refusal is not None:
            return await _refuse(worker, tool_ids, refusal, "blocked")
        return await _run_tool(channel, worker, call, tool_ids)
    except asyncio.CancelledError:
        await asyncio.shield(worker.finish("cancelled", "Worker cancelled: the turn was stopped"))
        raise


async def _refuse(
    worker: Worker, tool_ids: Mapping[str, Any], message: str, outcome: str, started: float | None = None
) -> str:
    """End the worker with a tool failure the model reads as the result."""
    took = 0 if started is None else int((time.monotonic() - started) * 1000)
    await worker.host.hooks.call("spacebot_tool_failed", **tool_ids, error=message, duration_ms=took)
    return await worker.finish(outcome, message)


async def _refusal(
    channel: ChannelContext, worker: Worker, call: ToolCall, tool_ids: Mapping[str, Any], *, preapproved: bool
) -> str | None:
    """Why the call may not run (an approval hook denied or skipped it, or the people asked for
    permission refused it), or None when it may."""
    decision = None
    if not preapproved:
        decision = await worker.wait(
            channel.host.hooks.first("spacebot_before_tool_call", **tool_ids, arguments=call.arguments),
            f"waiting for approval of {call.name}",
        )
    if decision and decision.get("decision") in ("deny", "skip"):
        verb = "denied" if decision["decision"] == "deny" else "skipped"
        return f"Tool {verb}: {decision.get('reason') or 'no reason given'}"
    approved = preapproved or bool(decision and decision.get("decision") == "allow")
    if call.name in channel.agent.permission_tools and not approved:
        allowed = await worker.wait(
            ask_permission(channel, worker, call), f"asking permission to run {call.name}", grace=0
        )
        if not allowed:
            return f"Tool denied: permission to run {call.name} was refused"
    return None


async def _run_tool(channel: ChannelContext, worker: Worker, call: ToolCall, tool_ids: Mapping[str, Any]) -> str:
    """Run an allowed call with its tool's time limit: tool started, then completed or failed."""
    hooks = channel.host.hooks
    tool = channel.host.tools.get(call.name)
    await hooks.call("spacebot_tool_started", **tool_ids, arguments=call.arguments)
    started = time.monotonic()
    if tool is None:
        return await _refuse(worker, tool_ids, f"Tool error: there is no tool named {call.name}", "failed", started)
    try:
        result = await asyncio.wait_for(tool.run(call.arguments), timeout=tool.timeout_seconds)
    except TimeoutError:
        message = f"Tool error: {call.name} timed out after {tool.timeout_seconds:g}s"
        return await _refuse(worker, tool_ids, message, "timed_out", started)
    except Exception as exc:
        return await _refuse(worker, tool_ids, f"Tool error: {exc}", "failed", started)
    await hooks.call(
        "spacebot_tool_completed",
        **tool_ids,
        result=result[:RESULT_CHARS],
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    return await worker.finish("succeeded", result)


async def ask_permission(channel: ChannelContext, worker: Worker, call: ToolCall) -> bool:
    """Spacebot's WorkerPermission: ask the people in the conversation, wait for their answer."""
    permission_id = new_id("perm")
    answer = channel.host.expect_answer(permission_id)
    await channel.host.hooks.call(
        "spacebot_worker_permission_asked",
        **worker.ids,
        permission_id=permission_id,
        description=f"{channel.agent.name} wants to run {call.name} with {dict(call.arguments)}",
        patterns=[call.name],
    )
    return bool((await answer).get("allow"))


async def ask_people(channel: ChannelContext, call: ToolCall, base: Mapping[str, Any]) -> str:
    """The `ask_user` tool: an interactive worker asks a question (Spacebot's WorkerQuestion) and
    waits, as long as it takes, for an answer delivered through HostAPI.deliver_interaction."""
    worker = Worker(channel, base, "ask the people in the conversation", interactive=True)
    await worker.start()
    question_id = new_id("q")
    options = [{"label": str(label)} for label in call.arguments.get("options") or []][:10]
    question = {
        "question": str(call.arguments.get("question", ""))[:500],
        "header": channel.agent.name,
        "options": options,
    }
    try:
        answer = channel.host.expect_answer(question_id)
        await channel.host.hooks.call(
            "spacebot_worker_question_asked", **worker.ids, question_id=question_id, questions=[question]
        )
        reply = await worker.wait(answer, "waiting for an answer", grace=0)
        text = str(reply.get("answer", "")).strip()
        return await worker.finish("succeeded", f"The answer was: {text}" if text else "No answer was given")
    except asyncio.CancelledError:
        await asyncio.shield(worker.finish("cancelled", "Worker cancelled: the turn was stopped"))
        raise
