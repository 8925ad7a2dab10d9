"""Agent activity from host hooks (tools, workers, usage, health) as canonical events.

Workers report by id only after they start; the channel and thread each worker belongs to are
remembered from `worker_started` so every later event lands in the right channel.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..cards.service import CardService
from ..events import (
    SYSTEM,
    Actor,
    AgentStatusChanged,
    Event,
    Payload,
    ToolCompleted,
    ToolFailed,
    ToolStarted,
    WorkerCompleted,
    WorkerPermissionAsked,
    WorkerQuestionAsked,
    WorkerStarted,
    WorkerStatus,
)
from ..hookspecs import hookimpl
from ..identity.permissions import Access
from ..instance import Instance
from ..store import usage as usage_store
from ..store.db import Database, WriteTx

SUMMARY_CHARS = 200
FINISHED_KEPT = 1000


def summarize(value: Any, limit: int = SUMMARY_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class WorkerPlace:
    agent_id: str
    channel_id: str | None
    thread_id: str | None


class Activity:
    def __init__(self, db: Database, access: Access, instance: Instance, cards: CardService) -> None:
        self.db, self.access, self.instance, self.cards = db, access, instance, cards
        self.workers: dict[str, WorkerPlace] = {}
        # Where recently finished workers ran, for plugins reacting to their end (bounded).
        self.finished: OrderedDict[str, WorkerPlace] = OrderedDict()

    async def _emit(
        self,
        payload: Payload,
        *,
        agent_id: str | None,
        channel_id: str | None,
        thread_id: str | None,
        failure: tuple[str, str] | None = None,
    ) -> None:
        """Log the event; with `failure` (source, message), also keep it among the last errors."""
        channel = self.access.channels.get(channel_id) if channel_id else None
        actor = Actor("agent", agent_id) if agent_id else SYSTEM
        event = Event(
            payload,
            actor=actor,
            org_id=channel["org_id"] if channel else self.instance.org_id,
            team_id=channel["team_id"] if channel else None,
            channel_id=channel["id"] if channel else None,
            thread_id=thread_id if channel else None,
        )

        def write(tx: WriteTx) -> None:
            tx.emit(event)
            if failure is not None:
                usage_store.error(
                    tx,
                    org_id=event.org_id or self.instance.org_id,
                    source=failure[0],
                    message=failure[1],
                    agent_id=agent_id,
                    channel_id=event.channel_id,
                    thread_id=event.thread_id,
                    at=event.timestamp,
                )

        await self.db.write(write)

    @hookimpl
    async def spacebot_tool_started(
        self,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        worker_id: str | None,
        call_id: str,
        tool: str,
        arguments: Any,
    ) -> None:
        payload = ToolStarted(
            agent_id=agent_id,
            call_id=call_id,
            tool=tool,
            arguments_summary=summarize(arguments),
            worker_id=worker_id,
        )
        await self._emit(payload, agent_id=agent_id, channel_id=channel_id, thread_id=thread_id)

    @hookimpl
    async def spacebot_tool_completed(
        self,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        worker_id: str | None,
        call_id: str,
        tool: str,
        result: str,
        duration_ms: int,
    ) -> None:
        payload = ToolCompleted(
            agent_id=agent_id,
            call_id=call_id,
            tool=tool,
            duration_ms=duration_ms,
            result_summary=summarize(result),
            worker_id=worker_id,
        )
        await self._emit(payload, agent_id=agent_id, channel_id=channel_id, thread_id=thread_id)

    @hookimpl
    async def spacebot_tool_failed(
        self,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        worker_id: str | None,
        call_id: str,
        tool: str,
        error: str,
        duration_ms: int,
    ) -> None:
        payload = ToolFailed(
            agent_id=agent_id,
            call_id=call_id,
            tool=tool,
            duration_ms=duration_ms,
            error=summarize(error),
            worker_id=worker_id,
        )
        await self._emit(
            payload, agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, failure=("tool", f"{tool}: {error}")
        )

    @hookimpl
    async def spacebot_worker_started(
        self, agent_id: str, channel_id: str | None, thread_id: str | None, worker_id: str, task: str
    ) -> None:
        self.workers[worker_id] = WorkerPlace(agent_id, channel_id, thread_id)
        payload = WorkerStarted(worker_id=worker_id, agent_id=agent_id, task=summarize(task))
        await self._emit(payload, agent_id=agent_id, channel_id=channel_id, thread_id=thread_id)

    @hookimpl
    async def spacebot_worker_status(self, agent_id: str, worker_id: str, state: str, status: str) -> None:
        place = self.workers.get(worker_id, WorkerPlace(agent_id, None, None))
        payload = WorkerStatus(worker_id=worker_id, agent_id=agent_id, state=state, status=summarize(status, 256))
        await self._emit(payload, agent_id=agent_id, channel_id=place.channel_id, thread_id=place.thread_id)

    @hookimpl
    async def spacebot_worker_completed(
        self, agent_id: str, worker_id: str, outcome: str, result: str, success: bool
    ) -> None:
        place = self.workers.pop(worker_id, None) or self.finished.get(worker_id) or WorkerPlace(agent_id, None, None)
        self.finished[worker_id] = place
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)
        payload = WorkerCompleted(
            worker_id=worker_id, agent_id=agent_id, outcome=outcome, result=summarize(result), success=success
        )
        failed = outcome in ("failed", "timed_out")
        await self._emit(
            payload,
            agent_id=agent_id,
            channel_id=place.channel_id,
            thread_id=place.thread_id,
            failure=("worker", f"worker {outcome}: {result}") if failed else None,
        )

    @hookimpl
    async def spacebot_worker_question_asked(
        self, agent_id: str, worker_id: str, question_id: str, questions: Sequence[Mapping[str, Any]]
    ) -> None:
        place = self.workers.get(worker_id, WorkerPlace(agent_id, None, None))
        payload = WorkerQuestionAsked(
            worker_id=worker_id, agent_id=agent_id, question_id=question_id, questions=[dict(q) for q in questions]
        )
        await self._emit(payload, agent_id=agent_id, channel_id=place.channel_id, thread_id=place.thread_id)
        if place.channel_id and questions:
            first = questions[0]
            options = [
                {"label": str(o.get("label", ""))[:75], "value": str(o.get("label", ""))[:2000]}
                for o in first.get("options", [])
                if o.get("label")
            ]
            blocks: list[dict[str, Any]] = [{"type": "section", "text": str(first.get("question", ""))[:3000]}]
            if options:
                blocks.append(
                    {
                        "type": "actions",
                        "block_id": "answer",
                        "elements": [
                            {"type": "select", "action_id": "answer", "placeholder": "Choose", "options": options[:100]}
                        ],
                    }
                )
            else:
                blocks.append(
                    {
                        "type": "form",
                        "block_id": "answer",
                        "action_id": "answer",
                        "submit_label": "Answer",
                        "fields": [{"type": "textarea", "name": "answer", "label": "Your answer", "required": True}],
                    }
                )
            await self.cards.post(
                self.access.channels[place.channel_id],
                f"{agent_id} asks: {first.get('question', '')}"[:3000],
                thread_id=place.thread_id,
                blocks=blocks,
                author=Actor("agent", agent_id),
                metadata={"worker_question": {"question_id": question_id, "agent_id": agent_id}},
            )

    @hookimpl
    async def spacebot_worker_permission_asked(
        self, agent_id: str, worker_id: str, permission_id: str, description: str, patterns: Sequence[str]
    ) -> None:
        place = self.workers.get(worker_id, WorkerPlace(agent_id, None, None))
        payload = WorkerPermissionAsked(
            worker_id=worker_id,
            agent_id=agent_id,
            permission_id=permission_id,
            description=summarize(description, 500),
            patterns=list(patterns),
        )
        await self._emit(payload, agent_id=agent_id, channel_id=place.channel_id, thread_id=place.thread_id)
        if place.channel_id:
            # Granting an agent permission to act is an approval: it needs tasks:approve.
            blocks: list[dict[str, Any]] = [
                {"type": "section", "text": summarize(description, 3000)},
                {
                    "type": "actions",
                    "block_id": "permission",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "permission.allow",
                            "label": "Allow",
                            "style": "primary",
                            "scope": "tasks:approve",
                        },
                        {
                            "type": "button",
                            "action_id": "permission.deny",
                            "label": "Deny",
                            "style": "danger",
                            "scope": "tasks:approve",
                        },
                    ],
                },
            ]
            await self.cards.post(
                self.access.channels[place.channel_id],
                f"{agent_id} asks permission: {summarize(description, 200)}",
                thread_id=place.thread_id,
                blocks=blocks,
                author=Actor("agent", agent_id),
                metadata={"worker_permission": {"permission_id": permission_id, "agent_id": agent_id}},
            )

    @hookimpl
    async def spacebot_worker_idle(self, agent_id: str, worker_id: str) -> None:
        await self.spacebot_worker_status(agent_id, worker_id, "waiting_for_input", "waiting for input")

    @hookimpl
    async def spacebot_branch_started(self, agent_id: str, channel_id: str, thread_id: str, description: str) -> None:
        await self.status(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="branching", detail=description
        )

    @hookimpl
    async def spacebot_branch_completed(self, agent_id: str, channel_id: str, thread_id: str) -> None:
        await self.status(agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="thinking", detail=None)

    @hookimpl
    async def spacebot_status_update(self, agent_id: str, channel_id: str, thread_id: str, status: str) -> None:
        await self.status(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="working", detail=summarize(status)
        )

    @hookimpl
    async def spacebot_compaction_started(self, agent_id: str, channel_id: str, thread_id: str, kind: str) -> None:
        await self.status(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="compacting", detail=kind
        )

    @hookimpl
    async def spacebot_compaction_completed(
        self, agent_id: str, channel_id: str, thread_id: str, success: bool
    ) -> None:
        detail = "compacted" if success else "compaction failed"
        await self.status(agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="idle", detail=detail)

    async def status(self, *, agent_id: str, channel_id: str, thread_id: str, status: str, detail: str | None) -> None:
        payload = AgentStatusChanged(agent_id=agent_id, status=status, detail=detail)
        await self._emit(payload, agent_id=agent_id, channel_id=channel_id, thread_id=thread_id)
