"""The bridge's side of Spacebot's event stream: conversations, turns, and each event's mapping
to the hooks (host.py says why; docs/bridge.md has the table).

`BridgeEvents` is the part of `BridgeHost` that turns one Spacebot event into hook calls; it
keeps per-conversation state (the open turn, pending message ids, running workers, questions).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ...events import new_id
from ..hooks import HookRunner
from .conversations import (
    ERROR_REPLY,
    MODEL,
    PROVIDER,
    RESULT_CHARS,
    STATUS_CHARS,
    Ask,
    Conversation,
    ConversationState,
    Input,
    Payload,
    Turn,
    arguments,
    call_key,
    hidden,
    outcome,
    remember,
    take,
    worker_of,
)

log = logging.getLogger("spacechat.host.bridge")

MAX_CONVERSATIONS = 10_000

ConversationHandler = Callable[[Conversation, ConversationState, Payload], Awaitable[None]]

# Spacebot events with nothing in Spacechat to land in, and why (docs/bridge.md repeats it).
DROPPED = {
    "config_reloaded": "Spacebot reloaded its own skills and identity; nothing in Spacechat changes",
    "notification_created": "Spacebot's notifications point at its own UI; Spacechat shows the tasks and errors",
    "notification_updated": "read/dismissed state of Spacebot's own notifications",
    "cortex_chat_message": "the cortex chat is Spacebot's admin console, not a conversation",
    "opencode_part_updated": "OpenCode's raw transcript parts; the worker's tool events carry what people see",
    "chronicle_checkpoint": "Spacebot's own summary of a session; the Spacechat thread is the record",
}


class BridgeEvents:
    """Spacebot events to hook calls, per conversation. Mixed into BridgeHost."""

    hooks: HookRunner
    agents_by_id: Mapping[str, Any]
    conversations: OrderedDict[Conversation, ConversationState]
    worker_homes: dict[str, Conversation]
    tool_calls: dict[tuple[str, str], list[tuple[str, float]]]
    questions: OrderedDict[str, Ask]
    _conversation_events: dict[str, ConversationHandler]
    _instance_events: dict[str, Callable[[Payload], Awaitable[None]]]

    # Provided by BridgeHost: the HTTP side.
    async def _send(self, conversation: Conversation, sent: Input) -> None:
        raise NotImplementedError

    def _handlers(self) -> dict[str, ConversationHandler]:
        return {
            "typing_state": self._on_typing,
            "outbound_message_delta": self._on_text_delta,
            "reasoning_delta": self._on_reasoning_delta,
            "outbound_message": self._on_outbound,
            "inbound_message": self._on_inbound,
            "tool_started": self._on_tool_started,
            "tool_completed": self._on_tool_completed,
            "tool_output": self._on_tool_output,
            "worker_started": self._on_worker_started,
            "worker_status": self._on_worker_status,
            "worker_idle": self._on_worker_idle,
            "worker_completed": self._on_worker_completed,
            "process_text": self._on_process_text,
            "branch_started": self._on_branch_started,
            "branch_completed": self._on_branch_completed,
            "compaction_started": self._on_compaction,
            "compaction_completed": self._on_compaction,
        }

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
        state.pending.extend(sent.message_ids)
        state.last_input, state.sent_at = sent, time.monotonic()
        remember(state.echoes, sent.text)
        try:
            await self._send(conversation, sent)
        except RuntimeError as exc:
            log.warning("could not hand a message to Spacebot: %s", exc)
            take(state.echoes, sent.text)
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

    async def _complete_turn(
        self,
        conversation: Conversation,
        state: ConversationState,
        turn: Turn,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
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
            blocks=blocks,
            ttft_ms=turn.ttft_ms,
            duration_ms=turn.elapsed_ms(),
        )

    async def _fail_turn(
        self, conversation: Conversation, state: ConversationState, error: str, *, retryable: bool = True
    ) -> None:
        turn, state.turn = state.turn, None
        if turn is None:
            return
        await self.hooks.call(
            "spacebot_turn_failed",
            agent_id=conversation.agent_id,
            turn_id=turn.turn_id,
            error=error,
            retryable=retryable,
            duration_ms=turn.elapsed_ms(),
        )

    async def _deliver(
        self,
        conversation: Conversation,
        state: ConversationState,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """A whole reply: it ends the open turn, or else it is a message of its own."""
        if state.turn is not None:
            await self._complete_turn(conversation, state, state.turn, text, blocks)
        else:
            await self.hooks.call("spacebot_outbound_message", **conversation.place, text=text, blocks=blocks)

    # -- dispatch -----------------------------------------------------------------------------

    async def _dispatch(self, name: str, data: str) -> None:
        """One frame of the stream. A malformed or unknown event is logged with its type and
        skipped: it never takes the link down, and never leaves a turn open on its account."""
        in_conversation = self._conversation_events.get(name)
        instance_wide = self._instance_events.get(name)
        if in_conversation is None and instance_wide is None:
            if name in DROPPED:
                log.debug("Spacebot event %s dropped: %s", name, DROPPED[name])
            else:
                log.warning("unknown Spacebot event %s skipped", name)
            return
        try:
            payload = json.loads(data)
        except ValueError:
            log.warning("malformed Spacebot event %s skipped (not JSON)", name)
            return
        if not isinstance(payload, dict):
            log.warning("malformed Spacebot event %s skipped (not an object)", name)
            return
        try:
            if instance_wide is not None:
                await instance_wide(payload)
            elif in_conversation is not None and (found := self._locate(payload)) is not None:
                found[1].last_event = time.monotonic()
                await in_conversation(*found, payload)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed Spacebot event %s skipped (%s: %s)", name, type(exc).__name__, exc)
        except Exception:
            log.exception("could not handle the Spacebot event %s", name)

    def _locate(self, payload: Payload) -> tuple[Conversation, ConversationState] | None:
        """The conversation an event belongs to, by its session id or else by the worker that
        sent it; None for conversations that are not Spacechat's."""
        conversation = Conversation.parse(str(payload.get("channel_id") or ""))
        worker_id = worker_of(payload)
        if conversation is None and worker_id is not None:
            conversation = self.worker_homes.get(worker_id)
        if conversation is None or conversation.agent_id not in self.agents_by_id:
            return None
        return conversation, self._state(conversation)

    # -- messages and turns -------------------------------------------------------------------

    async def _on_typing(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if payload["is_typing"]:
            await self._open_turn(conversation, state)
            return
        for ask in [a for a in state.asks if a.text is not None and not a.delivered]:
            # The question's id never came: show it as Spacebot's text-only channels do.
            ask.delivered = True
            await self._deliver(conversation, state, ask.text or ask.fallback_text)
        if state.turn is not None:
            await self._complete_turn(conversation, state, state.turn, state.turn.text)

    async def _on_text_delta(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        delta = payload.get("text_delta")
        if delta is None:
            aggregated = str(payload.get("aggregated_text") or "")
            known = state.turn.text if state.turn is not None else ""
            delta = aggregated[len(known) :] if aggregated.startswith(known) else ""
        await self._stream_text(conversation, state, str(delta))

    async def _on_reasoning_delta(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        """`reasoning_delta` carries `reasoning_delta` and `aggregated_reasoning` (ApiEvent::ReasoningDelta)."""
        turn = await self._open_turn(conversation, state)
        delta = payload.get("reasoning_delta")
        if delta is None:
            aggregated = str(payload.get("aggregated_reasoning") or "")
            delta = aggregated[len(turn.reasoning) :] if aggregated.startswith(turn.reasoning) else ""
        turn.reasoning += str(delta)
        if delta:
            await self.hooks.call(
                "spacebot_reasoning_delta", agent_id=conversation.agent_id, turn_id=turn.turn_id, delta=str(delta)
            )

    async def _on_outbound(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        text = str(payload["text"])
        if text.startswith(ERROR_REPLY):
            # Spacebot's only sign of a failed model call: the turn failed, it did not answer.
            await self._open_turn(conversation, state)
            await self._fail_turn(conversation, state, text[len(ERROR_REPLY) :] or text)
            return
        if take(state.backfilled, text):
            return  # the backfill already delivered it (sync.py)
        ask = next((a for a in state.asks if not a.delivered and a.fallback_text == text), None)
        if ask is not None:
            ask.text = text
            await self._deliver_ask(conversation, state, ask)
            return
        remember(state.delivered, text)
        await self._deliver(conversation, state, text)

    async def _on_inbound(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        """The echo of what the bridge sent is skipped (deliver_message already called the hook);
        anything else (Spacebot's own system messages, a message typed into this conversation
        in Spacebot's UI) reaches the plugin with no Spacechat message id."""
        system = bool(payload.get("system"))
        text = str(payload["text"])
        if not system and take(state.echoes, text):
            return
        sender_id = str(payload.get("sender_id") or "")
        await self.hooks.call(
            "spacebot_inbound_message",
            **conversation.place,
            message_id=None,
            sender={
                "kind": "system" if system else "user",
                "id": sender_id,
                "name": str(payload.get("sender_name") or sender_id or "someone"),
            },
            text=text,
        )

    # -- questions (the ask tool) -------------------------------------------------------------

    async def _deliver_ask(self, conversation: Conversation, state: ConversationState, ask: Ask) -> None:
        """Show the question once both its text and its id are known, as a card with Spacebot's
        own interaction ids; deliver_interaction answers it."""
        if ask.delivered or ask.text is None or ask.question_id is None:
            return
        ask.delivered = True
        self.questions[ask.question_id] = ask
        while len(self.questions) > MAX_CONVERSATIONS:
            self.questions.popitem(last=False)
        remember(state.delivered, f"[ask] {ask.question}")  # how Spacebot logs it in the history
        await self._deliver(conversation, state, ask.text, ask.blocks())

    def _ask_answer(self, interaction: Mapping[str, Any], who: str) -> str | None:
        """The text Spacebot's `enrich_ask_interaction` (src/agent/channel.rs) makes of an answer
        to an `ask:{question_id}:{idx}` interaction, or None when it is not one."""
        action_id = str(interaction.get("action_id") or "")
        if not action_id.startswith("ask:"):
            return None
        question_id, _, index = action_id[4:].rpartition(":")
        ask = self.questions.get(question_id)
        if ask is None or ask.answered:
            return f"[interaction: {action_id}] (expired)"
        values = interaction.get("values")
        picked = [index] if index != "menu" else [str(v).rpartition(":")[2] for v in (values or [])]
        labels = [ask.options[int(i)]["label"] for i in picked if i.isdigit() and int(i) < len(ask.options)]
        if not labels:
            return f"[interaction: {action_id}] (expired — no matching options)"
        ask.answered = True
        return f'{who} answered "{ask.question}": {", ".join(labels)}'

    # -- tools --------------------------------------------------------------------------------

    def _tool_ids(self, conversation: Conversation, state: ConversationState, payload: Payload) -> dict[str, Any]:
        return {
            **conversation.place,
            "turn_id": self._turn_id(state),
            "worker_id": worker_of(payload),
            "tool": str(payload["tool_name"]),
        }

    async def _on_tool_started(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if hidden(payload):
            return
        call_id = str(payload.get("call_id") or new_id("call"))
        self.tool_calls.setdefault(call_key(payload), []).append((call_id, time.monotonic()))
        args = arguments(payload.get("args"))
        if payload.get("process_type") == "channel" and payload["tool_name"] == "ask":
            options = [
                {"label": str(o.get("label", "")).strip(), "description": str(o.get("description") or "")}
                for o in args.get("options") or []
                if isinstance(o, Mapping) and str(o.get("label", "")).strip()
            ]
            question = str(args.get("question", "")).strip()
            state.asks.append(Ask(call_id, question, options, bool(args.get("multi_select"))))
            del state.asks[:-20]
        await self.hooks.call(
            "spacebot_tool_started", **self._tool_ids(conversation, state, payload), call_id=call_id, arguments=args
        )

    async def _on_tool_completed(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if hidden(payload):
            return
        key = call_key(payload)
        started = self.tool_calls.get(key) or [(str(payload.get("call_id") or new_id("call")), time.monotonic())]
        call_id, began = started.pop(0)
        if not started:
            self.tool_calls.pop(key, None)
        ids = {**self._tool_ids(conversation, state, payload), "call_id": call_id}
        ids["duration_ms"] = int((time.monotonic() - began) * 1000)
        result = str(payload.get("result", ""))[:RESULT_CHARS]
        if result.startswith("Toolset error:"):  # how Spacebot's hook tells a tool error
            await self.hooks.call("spacebot_tool_failed", **ids, error=result)
            return
        await self.hooks.call("spacebot_tool_completed", **ids, result=result)
        ask = next((a for a in state.asks if a.call_id == call_id), None)
        if ask is not None:
            try:
                ask.question_id = str(json.loads(result)["question_id"])
            except (ValueError, KeyError, TypeError):
                log.warning("the ask tool's result has no question id: %.200s", result)
                return
            await self._deliver_ask(conversation, state, ask)

    async def _on_tool_output(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if hidden(payload):
            return
        calls = self.tool_calls.get(call_key(payload)) or [(str(payload.get("call_id") or ""), 0.0)]
        await self.hooks.call(
            "spacebot_tool_output",
            **self._tool_ids(conversation, state, payload),
            call_id=calls[0][0],
            line=str(payload["line"])[:RESULT_CHARS],
            stream=str(payload.get("stream") or "stdout"),
        )

    # -- workers and branches -----------------------------------------------------------------

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
        ended = outcome(payload)
        await self.hooks.call(
            "spacebot_worker_completed",
            agent_id=conversation.agent_id,
            worker_id=worker_id,
            outcome=ended,
            result=str(payload.get("result", ""))[:RESULT_CHARS],
            success=ended in ("succeeded", "partial"),
        )

    async def _on_process_text(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        await self.hooks.call(
            "spacebot_process_text",
            **conversation.place,
            process_type=str(payload["process_type"]),
            process_id=str(payload["process_id"]),
            text=str(payload["text"])[:RESULT_CHARS],
        )

    async def _on_branch_started(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        description = str(payload.get("description", ""))
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
        await self.hooks.call(
            "spacebot_branch_completed",
            **conversation.place,
            branch_id=str(payload["branch_id"]),
            conclusion=conclusion,
        )

    async def _on_compaction(self, conversation: Conversation, state: ConversationState, payload: Payload) -> None:
        if payload.get("type") == "compaction_started":
            await self.hooks.call("spacebot_compaction_started", **conversation.place, kind=str(payload["kind"]))
        else:
            await self.hooks.call(
                "spacebot_compaction_completed", **conversation.place, success=bool(payload["success"])
            )

    async def _on_agent_message(self, payload: Payload) -> None:
        await self.hooks.call(
            "spacebot_agent_message",
            from_agent_id=str(payload["from_agent_id"]),
            to_agent_id=str(payload["to_agent_id"]),
            link_id=str(payload["link_id"]),
            link_channel=str(payload["channel_id"]),
            direction="sent" if payload.get("type") == "agent_message_sent" else "received",
        )
