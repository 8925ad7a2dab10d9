"""Workers: a tool call run as an asyncio task with Spacebot's states and outcomes.

running -> (waiting_for_input while `spacebot_before_tool_call` waits for a decision) -> running
-> done | failed, ending with one outcome: succeeded, failed, timed_out, blocked (denied or
skipped) or cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..events import new_id
from .providers import ToolCall

if TYPE_CHECKING:
    from .turns import AgentChannel

# A decision slower than this means a human is deciding: the worker shows as waiting.
WAITING_AFTER_SECONDS = 0.05
RESULT_CHARS = 4000


@dataclass
class WorkerInfo:
    worker_id: str
    agent_id: str
    channel_id: str
    thread_id: str
    task: str
    state: str = "running"
    outcome: str | None = None
    started_at: float = 0.0


async def run_worker(channel: AgentChannel, call: ToolCall, base: Mapping[str, Any]) -> str:
    """Run one tool call in a worker; return what the model sees as the tool's result."""
    host, agent = channel.host, channel.agent
    hooks = host.hooks
    worker_id = new_id("worker")
    info = WorkerInfo(
        worker_id,
        agent.id,
        base["channel_id"],
        base["thread_id"],
        f"run {call.name}",
        started_at=time.monotonic(),
    )
    host.workers[worker_id] = info
    ids = {"agent_id": agent.id, "worker_id": worker_id}
    tool_ids = {**base, "worker_id": worker_id, "call_id": call.call_id, "tool": call.name}
    await hooks.call(
        "spacebot_worker_started",
        agent_id=agent.id,
        channel_id=base["channel_id"],
        thread_id=base["thread_id"],
        worker_id=worker_id,
        task=info.task,
        worker_type="builtin",
        interactive=False,
    )

    async def finish(state: str, outcome: str, result: str) -> str:
        info.state, info.outcome = state, outcome
        await hooks.call(
            "spacebot_worker_completed",
            **ids,
            outcome=outcome,
            result=result[:RESULT_CHARS],
            success=outcome in ("succeeded", "partial"),
        )
        host.workers.pop(worker_id, None)
        return result[:RESULT_CHARS]

    try:
        decision_task = asyncio.ensure_future(
            hooks.first("spacebot_before_tool_call", **tool_ids, arguments=call.arguments)
        )
        done, _ = await asyncio.wait({decision_task}, timeout=WAITING_AFTER_SECONDS)
        if not done:
            info.state = "waiting_for_input"
            await hooks.call(
                "spacebot_worker_status",
                **ids,
                state="waiting_for_input",
                status=f"waiting for approval of {call.name}",
            )
            await hooks.call("spacebot_worker_idle", **ids)
            decision = await decision_task
            info.state = "running"
            await hooks.call("spacebot_worker_status", **ids, state="running", status=f"running {call.name}")
        else:
            decision = decision_task.result()
        if decision and decision.get("decision") in ("deny", "skip"):
            verb = "denied" if decision["decision"] == "deny" else "skipped"
            reason = str(decision.get("reason") or "no reason given")
            message = f"Tool {verb}: {reason}"
            await hooks.call("spacebot_tool_failed", **tool_ids, error=message, duration_ms=0)
            return await finish("failed", "blocked", message)
        tool = host.tools.get(call.name)
        await hooks.call("spacebot_tool_started", **tool_ids, arguments=call.arguments)
        started = time.monotonic()
        if tool is None:
            message = f"Tool error: there is no tool named {call.name}"
            await hooks.call("spacebot_tool_failed", **tool_ids, error=message, duration_ms=0)
            return await finish("failed", "failed", message)
        try:
            result = await asyncio.wait_for(tool.run(call.arguments), timeout=tool.timeout_seconds)
        except TimeoutError:
            message = f"Tool error: {call.name} timed out after {tool.timeout_seconds:g}s"
            await hooks.call(
                "spacebot_tool_failed",
                **tool_ids,
                error=message,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
            return await finish("failed", "timed_out", message)
        except Exception as exc:
            message = f"Tool error: {exc}"
            await hooks.call(
                "spacebot_tool_failed",
                **tool_ids,
                error=message,
                duration_ms=int((time.monotonic() - started) * 1000),
            )
            return await finish("failed", "failed", message)
        await hooks.call(
            "spacebot_tool_completed",
            **tool_ids,
            result=result[:RESULT_CHARS],
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        return await finish("done", "succeeded", result)
    except asyncio.CancelledError:
        await asyncio.shield(finish("failed", "cancelled", "Worker cancelled: the turn was stopped"))
        raise
