"""A thread's provenance: what the agent did and why, step by step, from the event log (#15).

Each step is one thing that happened, in log order: a message, a turn starting (with the retry
it is, if any), a model call (model, tokens, cost, latency), a tool call (arguments and result,
its start and end merged), an approval asked and decided (with the rule that applied), an
interaction, a stop, a turn's end, a memory candidate. A model call's latency is the time from
the step before it in the same turn (the turn's start, or the last tool's end) to its usage
report, which providers send when the response ends. The log keeps `storage.retention_days`;
older steps are gone from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson

TYPES = (
    "message.created",
    "message.completed",
    "message.failed",
    "agent.token.usage",
    "tool.started",
    "tool.completed",
    "tool.failed",
    "approval.requested",
    "approval.decided",
    "approval.escalated",
    "interaction.submitted",
    "memory.candidate.created",
)

Step = dict[str, Any]


def _ms(start: str, end: str) -> int:
    a = datetime.fromisoformat(start.replace("Z", "+00:00"))
    b = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return int((b - a).total_seconds() * 1000)


class Builder:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.turn_of_message: dict[str, str] = {}  # reply message id -> turn id
        self.turn_mark: dict[str, str] = {}  # turn id -> when its last step ended
        self.tools: dict[str, Step] = {}  # call id -> its step
        self.handlers: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
            "message.created": self.created,
            "message.completed": self.ended,
            "message.failed": self.ended,
            "agent.token.usage": self.model_call,
            "tool.started": self.tool_started,
            "tool.completed": self.tool_ended,
            "tool.failed": self.tool_ended,
            "approval.requested": self.approval,
            "approval.decided": self.approval,
            "approval.escalated": self.approval,
            "interaction.submitted": self.interaction,
            "memory.candidate.created": self.memory,
        }

    def add(self, event: dict[str, Any], kind: str, **fields: Any) -> Step:
        step = {
            "index": len(self.steps),
            "seq": event["seq"],
            "at": event["timestamp"],
            "kind": kind,
            "actor": event["actor"],
            **fields,
        }
        self.steps.append(step)
        return step

    def created(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        message = payload["message"]
        turn_id = (message.get("metadata") or {}).get("turn_id")
        if message["author"]["kind"] == "agent" and turn_id:
            self.turn_of_message[message["id"]] = turn_id
            self.turn_mark[turn_id] = event["timestamp"]
            metadata = message["metadata"]
            if metadata.get("continues"):
                return  # the turn goes on in a message below one posted mid-turn: no new step
            if metadata.get("retry_of"):
                self.add(event, "retry", turn_id=turn_id, retry_of=metadata["retry_of"], message_id=message["id"])
            self.add(
                event,
                "turn_started",
                turn_id=turn_id,
                message_id=message["id"],
                model=metadata.get("model"),
                provider=metadata.get("provider"),
                in_reply_to=metadata.get("in_reply_to") or [],
            )
            return
        self.add(event, "message", message_id=message["id"], text=message["text"][:500], author=message["author"])

    def ended(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        message = payload["message"]
        turn_id = self.turn_of_message.get(message["id"])
        if turn_id is None:
            return
        metadata = message.get("metadata") or {}
        common = {"turn_id": turn_id, "message_id": message["id"], "text": message["text"][:2000]}
        if payload.get("reason") == "stopped":
            self.add(event, "stop", stopped_by=metadata.get("stopped_by"), **common)
            return
        if event["event_type"] == "message.failed":
            self.add(event, "turn_failed", reason=payload.get("reason"), error=payload.get("error"), **common)
            return
        self.add(
            event, "turn_completed", ttft_ms=metadata.get("ttft_ms"), duration_ms=metadata.get("duration_ms"), **common
        )

    def model_call(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        turn_id = payload.get("turn_id")
        since = self.turn_mark.get(turn_id or "")
        if turn_id:
            self.turn_mark[turn_id] = event["timestamp"]
        self.add(
            event,
            "model_call",
            turn_id=turn_id,
            model=payload["model"],
            provider=payload["provider"],
            tokens={
                name: payload.get(name, 0)
                for name in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "reasoning_tokens",
                )
            },
            cost_usd=payload.get("cost_usd"),
            unpriced=payload.get("cost_usd") is None,
            latency_ms=_ms(since, event["timestamp"]) if since else None,
        )

    def tool_started(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        self.tools[payload["call_id"]] = self.add(
            event,
            "tool_call",
            call_id=payload["call_id"],
            tool=payload["tool"],
            arguments=payload["arguments_summary"],
            outcome="running",
            result=None,
            duration_ms=None,
        )

    def tool_ended(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        step = self.tools.get(payload["call_id"])
        if step is None:  # denied or skipped before it started: a step of its own
            step = self.add(event, "tool_call", call_id=payload["call_id"], tool=payload["tool"], arguments=None)
        failed = event["event_type"] == "tool.failed"
        step.update(
            outcome="failed" if failed else "completed",
            result=payload.get("error") if failed else payload.get("result_summary"),
            duration_ms=payload.get("duration_ms"),
            ended_at=event["timestamp"],
        )
        for turn_id, mark in list(self.turn_mark.items()):
            if mark <= event["timestamp"]:
                self.turn_mark[turn_id] = event["timestamp"]

    def approval(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        approval = payload["approval"]
        kind = {"approval.requested": "approval_requested", "approval.decided": "approval_decided"}.get(
            event["event_type"], "approval_escalated"
        )
        self.add(
            event,
            kind,
            approval_id=approval["id"],
            tool=approval["tool"],
            call_id=approval.get("call_id"),
            policy=approval.get("policy"),
            risk=approval.get("risk"),
            status=approval.get("status"),
            decision=approval.get("decision"),
            rule=approval.get("rule"),
            escalated_to=approval.get("escalated_to"),
        )

    def interaction(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        interaction = payload["interaction"]
        self.add(
            event,
            "interaction",
            message_id=interaction.get("message_id"),
            action_id=interaction.get("action_id"),
            values=interaction.get("values"),
        )

    def memory(self, event: dict[str, Any], payload: dict[str, Any]) -> None:
        self.add(event, "memory_candidate", candidate=payload.get("candidate") or payload)


def steps(envelopes: Iterable[bytes]) -> list[Step]:
    builder = Builder()
    for body in envelopes:
        event = orjson.loads(body)
        builder.handlers[event["event_type"]](event, event["payload"])
    return builder.steps
