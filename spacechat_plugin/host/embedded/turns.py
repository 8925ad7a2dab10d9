"""One agent's process for one channel (Spacebot's channel process): a queue, a loop that
coalesces bursts of messages into one turn per thread, and the turn itself.

A turn streams the model's reply; tool calls run in workers (worker_started -> tool hooks ->
worker_completed), `branch` calls fork a thinking branch; the loop repeats until the model stops
calling tools. Every hook is called at the point Spacebot calls its equivalent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...events import new_id
from ..agui.client import AguiAgent
from ..agui.run import AguiRun
from .providers import (
    Card,
    Provider,
    ProviderError,
    ProviderEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolSpec,
    TurnError,
    Usage,
)
from .runtime import AgentRuntime
from .tools import ASK_USER_SPEC, BRANCH_SPEC, MEMORY_SAVE_SPEC
from .workers import run_worker

if TYPE_CHECKING:
    from ...config import AgentConfig

log = logging.getLogger("spacechat.host.turns")

MAX_STEPS = 6
MAX_TRANSCRIPT = 40
MAX_COALESCE_SECONDS = 2.0


@dataclass
class Inbound:
    thread_id: str
    message_id: str
    author: str
    text: str


@dataclass
class Work:
    """What the loop runs next: new messages, or a retry of a turn's input."""

    inbound: list[Inbound]
    turn_id: str | None = None  # preset for retries, so the caller learns it
    approved_call: ToolCall | None = None  # a tool call people approved after its turn was lost


@dataclass
class TurnRecord:
    thread_id: str
    inbound: list[Inbound]
    turn_id: str
    ok: bool = True


@dataclass
class Turn:
    """One turn in progress: what it says so far, and what the model sees."""

    record: TurnRecord
    base: dict[str, Any]
    provider: Provider
    conversation: list[dict[str, Any]]
    tools: list[ToolSpec]
    started: float = field(default_factory=time.monotonic)
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    ttft_ms: int | None = None

    @property
    def turn_id(self) -> str:
        return self.record.turn_id

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


@dataclass
class AgentChannel:
    host: AgentRuntime
    agent: AgentConfig
    channel_id: str
    pending: list[Inbound] = field(default_factory=list)
    retries: list[Work] = field(default_factory=list)
    transcripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    last_turns: dict[str, TurnRecord] = field(default_factory=dict)
    current_turn: str | None = None
    task: asyncio.Task[None] | None = None
    # Turns whose worker waits for people (an approval, an answer), by thread: they go on in the
    # background while the loop serves other threads; new work for their thread is held until
    # they end, so one thread's turns never overlap.
    waiting: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    held: dict[str, list[Work]] = field(default_factory=dict)
    _parked: tuple[str, asyncio.Event] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    # -- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name=f"agent {self.agent.id} in {self.channel_id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        for turn in list(self.waiting.values()):
            turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn
        self.waiting.clear()

    @property
    def queue_depth(self) -> int:
        return len(self.pending) + len(self.retries) + sum(len(work) for work in self.held.values())

    def park(self, thread_id: str) -> None:
        """A worker of the running turn waits for people: the loop may go on without it."""
        if self._parked is not None and self._parked[0] == thread_id:
            self._parked[1].set()

    def _unparked(self, thread_id: str) -> None:
        self.waiting.pop(thread_id, None)
        held = self.held.pop(thread_id, [])
        if held:
            self.retries.extend(held)
            self._wake.set()

    def enqueue(self, inbound: Inbound) -> None:
        self.pending.append(inbound)
        self._wake.set()

    def enqueue_retry(self, work: Work) -> None:
        self.retries.append(work)
        self._wake.set()

    async def _loop(self) -> None:
        coalesce = self.host.settings.runtime.coalesce_ms / 1000
        while True:
            await self._wake.wait()
            if self.pending and coalesce > 0:
                # Wait while messages keep arriving (debounce), up to a cap.
                deadline = time.monotonic() + MAX_COALESCE_SECONDS
                while time.monotonic() < deadline:
                    seen = len(self.pending)
                    await asyncio.sleep(coalesce)
                    if len(self.pending) == seen:
                        break
            self._wake.clear()
            work: list[Work] = self.retries
            self.retries = []
            batch, self.pending = self.pending, []
            by_thread: dict[str, list[Inbound]] = {}
            for inbound in batch:
                by_thread.setdefault(inbound.thread_id, []).append(inbound)
            work.extend(Work(group) for group in by_thread.values())
            for item in work:
                await self._run(item)

    async def _run(self, item: Work) -> None:
        """Run one turn until it ends, or until its worker waits for people (then it goes on in
        the background, and work for its thread waits for it)."""
        thread_id = item.inbound[0].thread_id
        if thread_id in self.waiting:
            self.held.setdefault(thread_id, []).append(item)
            return
        turn_id = item.turn_id or new_id("turn")
        parked = asyncio.Event()
        self._parked = (thread_id, parked)
        self.current_turn = turn_id
        turn = asyncio.create_task(
            self.run_turn(item.inbound, turn_id=turn_id, approved_call=item.approved_call),
            name=f"turn {turn_id}",
        )
        parking = asyncio.ensure_future(parked.wait())
        try:
            await asyncio.wait({turn, parking}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await turn
            raise
        finally:
            parking.cancel()
            self._parked = None
            self.current_turn = None
        if not turn.done():
            self.waiting[thread_id] = turn
            turn.add_done_callback(lambda _: self._unparked(thread_id))

    # -- a turn -------------------------------------------------------------------------------

    async def run_turn(
        self, inbound: list[Inbound], *, turn_id: str | None = None, approved_call: ToolCall | None = None
    ) -> None:
        """One turn: prepare (hooks, transcript, memories), then model steps with their tool calls
        until the model stops calling tools, then finish; any failure ends it through `_failed`."""
        turn = await self._prepare(inbound, turn_id or new_id("turn"))
        try:
            if isinstance(turn.provider, AguiAgent):
                # The AG-UI endpoint runs the whole turn; the same hooks come out of its events.
                said = [{"id": m.message_id, "author": m.author, "text": m.text} for m in inbound]
                await AguiRun(self, turn, turn.provider, said).run()
                await self.host.provider_ok(turn.provider.name)
            else:
                await self._model_steps(turn, approved_call)
            await self._finish(turn)
        except asyncio.CancelledError:
            await self._failed(turn, "the turn was cancelled", retryable=True)
            raise
        except TurnError as exc:
            await self._failed(turn, str(exc), retryable=exc.retryable)
        except ProviderError as exc:
            await self.host.provider_failed(turn.provider.name, str(exc))
            await self._failed(turn, str(exc), retryable=exc.retryable)
        except Exception as exc:
            log.exception("turn %s failed", turn.turn_id)
            await self._failed(turn, f"internal error ({type(exc).__name__})", retryable=False)

    async def _model_steps(self, turn: Turn, approved_call: ToolCall | None) -> None:
        """Model requests and their tool calls until the model stops calling tools."""
        if approved_call is not None:
            # Resume where the lost turn stopped: the call it asked for, approved, then the model.
            await self._tool_calls(turn, [approved_call], preapproved=True)
        for _ in range(MAX_STEPS):
            calls = await self._stream_step(turn)
            if not calls:
                break
            await self._tool_calls(turn, calls)

    async def _prepare(self, inbound: list[Inbound], turn_id: str) -> Turn:
        """Turn started; the inbound messages join the thread's transcript; what the agent
        remembers about them joins the system prompt."""
        host, agent = self.host, self.agent
        provider = host.providers[agent.provider]
        thread_id = inbound[0].thread_id
        record = TurnRecord(thread_id, inbound, turn_id)
        self.last_turns[thread_id] = record
        self.last_turns["*"] = record
        base = {"agent_id": agent.id, "channel_id": self.channel_id, "thread_id": thread_id, "turn_id": turn_id}
        started = time.monotonic()
        await host.hooks.call(
            "spacebot_turn_started",
            **base,
            model=agent.model,
            provider=provider.name,
            message_ids=[m.message_id for m in inbound],
        )
        transcript = self.transcripts.setdefault(thread_id, [])
        for message in inbound:
            transcript.append({"role": "user", "content": f"{message.author}: {message.text}"})
        del transcript[:-MAX_TRANSCRIPT]
        system = agent.system_prompt
        recalled = host.recall(agent.id, " ".join(m.text for m in inbound))
        if recalled:
            await host.hooks.call(
                "spacebot_memory_recalled",
                agent_id=agent.id,
                channel_id=self.channel_id,
                query=inbound[-1].text[:200],
                memory_ids=[m["id"] for m in recalled],
            )
            system += "\n\nWhat you remember:\n" + "\n".join(f"- {m['content']}" for m in recalled)
        tools = [BRANCH_SPEC, MEMORY_SAVE_SPEC, ASK_USER_SPEC, *(tool.spec for tool in host.tools.values())]
        conversation: list[dict[str, Any]] = [{"role": "system", "content": system}, *transcript]
        return Turn(record, base, provider, conversation, tools, started=started)

    async def _stream_step(self, turn: Turn) -> list[ToolCall]:
        """One model request, streamed: text and reasoning reach the hooks as they come; returns
        the tool calls the model asked for (none: the reply is complete)."""
        hooks, agent = self.host.hooks, self.agent
        calls: list[ToolCall] = []
        step_text = ""
        stream = turn.provider.stream(model=agent.model, messages=turn.conversation, tools=turn.tools)
        async for event in self._model_call(stream, turn.base, "channel", turn.provider.name):
            if isinstance(event, TextDelta):
                if turn.ttft_ms is None:
                    turn.ttft_ms = turn.elapsed_ms()
                turn.text += event.text
                step_text += event.text
                await hooks.call(
                    "spacebot_text_delta",
                    agent_id=agent.id,
                    turn_id=turn.turn_id,
                    delta=event.text,
                    aggregated_text=turn.text,
                )
            elif isinstance(event, ReasoningDelta):
                await hooks.call("spacebot_reasoning_delta", agent_id=agent.id, turn_id=turn.turn_id, delta=event.text)
            elif isinstance(event, Usage):
                await self._usage(event, turn.base, "channel", turn.provider.name)
            elif isinstance(event, Card):
                turn.blocks = event.blocks
            elif isinstance(event, ToolCall):
                calls.append(event)
        await self.host.provider_ok(turn.provider.name)
        if calls:
            turn.conversation.append(_assistant_calls(step_text or None, calls))
        return calls

    async def _tool_calls(self, turn: Turn, calls: list[ToolCall], *, preapproved: bool = False) -> None:
        """Run the model's calls in order (branches think, memory saves go through the memory
        hook, anything else runs in a worker); each result goes back to the model."""
        if preapproved:
            turn.conversation.append(_assistant_calls(None, calls))
        for call in calls:
            if call.name == "branch":
                result = await self._branch(call, turn.base)
            elif call.name == "memory_save":
                result = await self._save_memory(call, turn)
            else:
                result = await run_worker(self, call, turn.base, preapproved=preapproved)
            turn.conversation.append(
                {"role": "tool", "tool_call_id": call.call_id, "name": call.name, "content": result}
            )

    async def _finish(self, turn: Turn) -> None:
        self.transcripts.setdefault(turn.record.thread_id, []).append({"role": "assistant", "content": turn.text})
        await self.host.hooks.call(
            "spacebot_turn_completed",
            agent_id=self.agent.id,
            turn_id=turn.turn_id,
            text=turn.text,
            blocks=turn.blocks,
            ttft_ms=turn.ttft_ms,
            duration_ms=turn.elapsed_ms(),
        )

    async def _failed(self, turn: Turn, error: str, *, retryable: bool) -> None:
        """The one way a turn ends badly: marked not ok (so a retry knows), turn failed."""
        turn.record.ok = False
        await self.host.hooks.call(
            "spacebot_turn_failed",
            agent_id=self.agent.id,
            turn_id=turn.turn_id,
            error=error,
            retryable=retryable,
            duration_ms=turn.elapsed_ms(),
        )

    async def _model_call(
        self, stream: AsyncIterator[ProviderEvent], base: Mapping[str, Any], process_type: str, provider: str
    ) -> AsyncIterator[ProviderEvent]:
        """One model request between `spacebot_completion_call` and `spacebot_completion_response`
        (Spacebot's `PromptHook::on_completion_call` / `on_completion_response`)."""
        hooks = self.host.hooks
        ids = {**base, "process_type": process_type, "model": self.agent.model, "provider": provider}
        await hooks.call("spacebot_completion_call", **ids)
        started = time.monotonic()
        error: str | None = "the request was cancelled"
        try:
            async for event in stream:
                yield event
            error = None
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            raise
        finally:
            took = int((time.monotonic() - started) * 1000)
            await hooks.call("spacebot_completion_response", **ids, duration_ms=took, error=error)

    async def _usage(self, usage: Usage, base: Mapping[str, Any], process_type: str, provider: str) -> None:
        await self.host.hooks.call(
            "spacebot_llm_usage",
            **base,
            process_type=process_type,
            model=self.agent.model,
            provider=provider,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=None,
        )

    async def _branch(self, call: ToolCall, base: Mapping[str, Any]) -> str:
        """Fork a thinking branch: its text streams as the turn's reasoning; its conclusion
        returns to the channel as the tool result (Spacebot BranchStarted / BranchResult)."""
        hooks, agent = self.host.hooks, self.agent
        provider = self.host.providers[agent.provider]
        branch_id = new_id("branch")
        description = str(call.arguments.get("description", ""))[:500]
        where = {"agent_id": agent.id, "channel_id": base["channel_id"], "thread_id": base["thread_id"]}
        await hooks.call("spacebot_branch_started", **where, branch_id=branch_id, description=description)
        conclusion = ""
        messages = [
            {
                "role": "system",
                "content": "[branch] Think the question through and state a short conclusion.",
            },
            {"role": "user", "content": description},
        ]
        stream = provider.stream(model=agent.model, messages=messages, tools=[])
        async for event in self._model_call(stream, base, "branch", provider.name):
            if isinstance(event, TextDelta | ReasoningDelta):
                if isinstance(event, TextDelta):
                    conclusion += event.text
                await hooks.call(
                    "spacebot_reasoning_delta", agent_id=agent.id, turn_id=base["turn_id"], delta=event.text
                )
            elif isinstance(event, Usage):
                await self._usage(event, base, "branch", provider.name)
        await hooks.call("spacebot_branch_completed", **where, branch_id=branch_id, conclusion=conclusion)
        return conclusion

    async def _save_memory(self, call: ToolCall, turn: Turn) -> str:
        """Spacebot's memory_save: `spacebot_before_memory_save` may queue it for review, save it
        itself (through the HostAPI) or refuse it."""
        content = str(call.arguments.get("content", ""))[:50_000]
        if not content.strip():
            return "Tool error: a memory needs content"
        memory: dict[str, Any] = {
            "content": content,
            "memory_type": str(call.arguments.get("memory_type") or "fact"),
            "importance": float(call.arguments.get("importance") or 0.6),
            "source": f"channel:{self.channel_id}",
            "channel_id": self.channel_id,
            "thread_id": turn.record.thread_id,
            "turn_id": turn.turn_id,
            "message_ids": [m.message_id for m in turn.record.inbound],
        }
        decision = await self.host.hooks.first(
            "spacebot_before_memory_save", agent_id=self.agent.id, channel_id=self.channel_id, memory=memory
        )
        if decision and decision.get("action") == "review":
            return f"Queued for review (candidate {decision.get('candidate_id')})"
        if decision and decision.get("action") == "reject":
            return f"Not saved: {decision.get('reason') or 'refused by policy'}"
        if decision and decision.get("action") == "saved":
            return f"Saved memory {decision.get('memory_id')}"
        memory_id = await self.host.save_memory(agent_id=self.agent.id, memory=memory)
        return f"Saved memory {memory_id}"


def _assistant_calls(content: str | None, calls: list[ToolCall]) -> dict[str, Any]:
    """The assistant message that asked for `calls`, as the Chat Completions transcript keeps it."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": c.call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
            }
            for c in calls
        ],
    }
