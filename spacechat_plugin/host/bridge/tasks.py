"""Spacebot's tasks through the bridge: its task events become hook calls (Spacechat mirrors the
tasks on its board), and Spacechat's task actions go to Spacebot's task routes (src/api/tasks.rs),
so Spacebot stays the source of truth.

| Spacechat action | Spacebot route |
|---|---|
| approve | `POST /api/tasks/{n}/approve` `{approved_by}` |
| reject | `PUT /api/tasks/{n}` `{status: "backlog"}` (Spacebot's any -> backlog) |
| reopen | `POST /api/tasks/{n}/execute` (backlog, done or failed -> ready) |
| start, complete, fail | `PUT /api/tasks/{n}` `{status: in_progress / done / failed}` |
| assign | `POST /api/tasks/{n}/assign` `{assigned_agent_id}` |
| edit | `PUT /api/tasks/{n}` `{title, description, priority}` |
| comment | `POST /api/tasks/{n}/comments` `{body}` |

Every write carries Spacebot's attribution (`author_type: "user"`, `author_id`, `source: "api"`,
`edit_summary`), so its revision history says who in Spacechat did it. A refusal raises
`HostRefused` with Spacebot's own `{"error": ...}` text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from ...hookspecs import HostRefused
from ..hooks import HookRunner
from .conversations import Payload, reason

log = logging.getLogger("spacechat.host.bridge")

SYSTEM = "Spacebot"
STATUS_ACTIONS = {"reject": "backlog", "start": "in_progress", "complete": "done", "fail": "failed"}
DONE = {"reject": "Rejected", "start": "Started", "complete": "Completed", "fail": "Failed"}
EDITABLE = ("title", "description", "priority")


def _error(status: int, body: Any) -> str:
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])[:500]
    return {400: "bad request", 404: "not found", 409: "conflict", 503: "task store not initialized"}.get(status, "")


class BridgeTasks:
    """Mixed into BridgeHost."""

    hooks: HookRunner
    tasks_seen: dict[int, dict[str, Any]]

    async def _request(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, params: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        raise NotImplementedError

    async def _get(self, path: str, key: str, params: Mapping[str, str] | None = None) -> Any:
        """A read of Spacebot's task routes: the body's `key`, or None (logged) when it failed."""
        try:
            status, body = await self._request("GET", path, params=params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not read %s from Spacebot: %s", path, reason(exc))
            return None
        if status != 200 or not isinstance(body, dict) or key not in body:
            log.warning("Spacebot answered HTTP %d for %s", status, path)
            return None
        return body[key]

    # -- events -------------------------------------------------------------------------------

    async def _on_task_updated(self, payload: Payload) -> None:
        """Every change is passed on with the task as `/api/tasks/{n}` returns it. A deleted task
        can no longer be fetched: it goes with the last copy seen, status `deleted`."""
        number = int(payload["task_number"])
        action = str(payload.get("action") or "updated")
        if action == "deleted":
            task = self.tasks_seen.pop(number, None) or {"task_number": number}
            task = {**task, "status": "deleted"}
        else:
            fetched = await self._get(f"/api/tasks/{number}", "task")
            task = fetched if isinstance(fetched, dict) else {"task_number": number, "status": payload.get("status")}
            self.tasks_seen[number] = task
        await self.hooks.call(
            "spacebot_task_updated",
            agent_id=payload.get("agent_id") or task.get("assigned_agent_id"),
            task_number=number,
            status=str(task.get("status") or payload.get("status") or ""),
            action=action,
            task=task,
        )

    async def _on_task_revised(self, payload: Payload) -> None:
        number, revision = int(payload["task_number"]), int(payload["revision"])
        summary = await self._get(f"/api/tasks/{number}/revisions/{revision}", "revision")
        if isinstance(summary, dict):
            summary = {k: v for k, v in summary.items() if k != "snapshot"}
        await self.hooks.call(
            "spacebot_task_revised",
            agent_id=payload.get("agent_id"),
            task_number=number,
            revision=revision,
            restored_from=payload.get("restored_from"),
            summary=summary if isinstance(summary, dict) else None,
        )

    async def _on_task_commented(self, payload: Payload) -> None:
        """The event names the comment; its body is read back by its place in the thread."""
        number, seq = int(payload["task_number"]), int(payload["seq"])
        found = await self._get(f"/api/tasks/{number}/comments", "comments", {"after": str(seq - 1), "limit": "1"})
        comment = next((c for c in found or [] if isinstance(c, dict) and c.get("id") == payload["comment_id"]), None)
        if comment is None:
            log.warning("Spacebot's comment %s on task #%d could not be read", payload["comment_id"], number)
            return
        await self.hooks.call(
            "spacebot_task_commented", agent_id=payload.get("agent_id"), task_number=number, comment=comment
        )

    # -- HostAPI.task_action ------------------------------------------------------------------

    async def task_action(
        self,
        *,
        source: str,
        number: int,
        action: str,
        actor: Mapping[str, Any],
        changes: Mapping[str, Any],
    ) -> dict[str, Any]:
        if source != "spacebot":
            raise LookupError(f"the bridge has no tasks from {source!r}")
        method, path, body, key = self._task_request(number, action, actor, changes)
        try:
            status, answer = await self._request(method, path, body=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HostRefused(SYSTEM, 0, reason(exc)) from None
        if status != 200 or not isinstance(answer, dict) or key not in answer:
            raise HostRefused(SYSTEM, status, _error(status, answer))
        if key == "task":
            self.tasks_seen[number] = answer["task"]
        return dict(answer)

    @staticmethod
    def _task_request(
        number: int, action: str, actor: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> tuple[str, str, dict[str, Any], str]:
        who = str(actor.get("name") or actor.get("id") or "someone")
        why = changes.get("reason")
        attribution: dict[str, Any] = {"author_type": "user", "author_id": who, "source": "api"}
        base = f"/api/tasks/{number}"
        if action == "approve":
            return "POST", f"{base}/approve", {**attribution, "approved_by": who}, "task"
        if action == "reopen":
            return "POST", f"{base}/execute", {**attribution, "approved_by": who}, "task"
        if action == "assign":
            return "POST", f"{base}/assign", {**attribution, "assigned_agent_id": changes.get("assignee_id")}, "task"
        if action == "comment":
            return (
                "POST",
                f"{base}/comments",
                {"author_type": "user", "author_id": who, "body": changes["text"]},
                "comment",
            )
        if action == "edit":
            edits = {k: changes[k] for k in EDITABLE if changes.get(k) is not None}
            return "PUT", base, {**attribution, **edits, "edit_summary": f"Edited in Spacechat by {who}"}, "task"
        if action in STATUS_ACTIONS:
            summary = f"{DONE[action]} in Spacechat by {who}" + (f": {why}" if why else "")
            return "PUT", base, {**attribution, "status": STATUS_ACTIONS[action], "edit_summary": summary[:200]}, "task"
        raise LookupError(f"no task action {action!r}")
