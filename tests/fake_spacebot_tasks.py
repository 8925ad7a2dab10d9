"""Spacebot's tasks, as the stand-in serves them (fake_spacebot.py says what it follows).

`Task` is `src/tasks/store.rs`'s (every field, serde's snake case), its status moves by
`can_transition`, and the routes of `src/api/tasks.rs` answer as Spacebot does: `GET
/api/tasks/{n}` `{"task"}` or a bare 404; the writes `{"task"}` or `TaskErrorBody`
`{"error": "..."}` (400 for an invalid transition or comment, 404, 409 for `execute` of a task
pending approval). Each write emits what Spacebot emits: `task_updated` (action `updated`,
`created`, `deleted`), then `task_revised` when it made a revision, or `task_commented`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

NOW = "2026-08-17T10:00:00Z"
USAGE_COUNTERS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "request_count",
)


def usage_totals(rows: list[dict[str, Any]], cost_status: str) -> dict[str, Any]:
    """`UsageTotals` (src/api/usage.rs): `estimated_cost_usd` is left out when unknown."""
    total: dict[str, Any] = {name: sum(int(row.get(name, 0)) for row in rows) for name in USAGE_COUNTERS}
    total["cost_status"] = cost_status
    if cost_status != "unknown":
        total["estimated_cost_usd"] = sum(float(row.get("estimated_cost_usd", 0.0)) for row in rows)
    return total


def can_transition(current: str, new: str) -> bool:
    """`can_transition` of src/tasks/store.rs."""
    if current == new or new == "backlog":
        return True
    return (current, new) in {
        ("pending_approval", "ready"),
        ("ready", "in_progress"),
        ("in_progress", "done"),
        ("in_progress", "ready"),
        ("in_progress", "failed"),
        ("backlog", "ready"),
        ("done", "ready"),
        ("failed", "ready"),
    }


class TaskRefused(Exception):
    def __init__(self, status: int, error: str) -> None:
        self.status, self.error = status, error


class FakeTasks:
    def __init__(self, emit: Callable[..., None]) -> None:
        self.emit = emit
        self.tasks: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.revisions: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        self._seq = 0

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/tasks/{number}", self._get)
        router.add_put("/api/tasks/{number}", self._update)
        router.add_delete("/api/tasks/{number}", self._delete)
        router.add_post("/api/tasks/{number}/approve", self._approve)
        router.add_post("/api/tasks/{number}/execute", self._execute)
        router.add_post("/api/tasks/{number}/assign", self._assign)
        router.add_get("/api/tasks/{number}/comments", self._list_comments)
        router.add_post("/api/tasks/{number}/comments", self._comment)
        router.add_get("/api/tasks/{number}/revisions/{revision}", self._revision)

    # -- what the agent side does -----------------------------------------------------------

    def create(
        self, title: str, *, owner: str = "spacebot", status: str = "pending_approval", description: str | None = None
    ) -> dict[str, Any]:
        """An agent's `task_create` tool (src/tools/task_create.rs): the task, revision 1, and
        `task_updated` with action `created` (the tool emits no `task_revised`)."""
        number = max(self.tasks, default=0) + 1
        task = {
            "id": str(uuid.uuid4()),
            "task_number": number,
            "title": title,
            "description": description,
            "status": status,
            "priority": "medium",
            "owner_agent_id": owner,
            "assigned_agent_id": owner,
            "subtasks": [],
            "metadata": {},
            "goal_id": None,
            "source_memory_id": None,
            "worker_id": None,
            "worker_type": None,
            "project_id": None,
            "repo_id": None,
            "worktree_mode": None,
            "worktree_id": None,
            "required_skills": [],
            "depends_on": [],
            "revision": 1,
            "created_by": owner,
            "approved_at": None,
            "approved_by": None,
            "created_at": NOW,
            "updated_at": NOW,
            "completed_at": None,
        }
        self.tasks[number] = task
        self.revisions[number] = [self._revision_row(task, "agent", owner, "tool", "Task created", None)]
        self._updated(task, "created")
        return task

    def set_status(self, number: int, status: str, *, author: str = "spacebot") -> dict[str, Any]:
        """A worker moving its task (the `task_update` tool): Spacebot's own change."""
        return self._change(number, {"status": status}, ("agent", author, "tool"), "Status changed")

    def add_comment(
        self, number: int, body: str, *, author_type: str = "agent", author_id: str = "spacebot"
    ) -> dict[str, Any]:
        return self._add_comment(number, body, author_type, author_id)

    # -- the store --------------------------------------------------------------------------

    def _effective_agent(self, task: dict[str, Any]) -> str:
        return str(task["assigned_agent_id"] or task["owner_agent_id"])

    def _updated(self, task: dict[str, Any], action: str) -> None:
        self.emit(
            "task_updated",
            agent_id=self._effective_agent(task),
            task_number=task["task_number"],
            status=task["status"] if action != "deleted" else "deleted",
            action=action,
        )

    def _revision_row(
        self,
        task: dict[str, Any],
        author_type: str,
        author_id: str | None,
        source: str,
        summary: str,
        restored: int | None,
    ) -> dict[str, Any]:
        """`TaskRevisionSummary` (src/tasks/revisions.rs) with its snapshot."""
        return {
            "id": str(uuid.uuid4()),
            "task_id": task["id"],
            "revision": task["revision"],
            "author_type": author_type,
            "author_id": author_id,
            "source": source,
            "edit_summary": summary,
            "restored_from": restored,
            "created_at": NOW,
            "snapshot": {k: task[k] for k in ("title", "description", "status", "priority", "assigned_agent_id")},
        }

    def _change(
        self, number: int, changes: dict[str, Any], who: tuple[str, str | None, str], summary: str
    ) -> dict[str, Any]:
        task = self.tasks.get(number)
        if task is None:
            raise TaskRefused(404, f"task #{number} not found")
        status = changes.get("status")
        if status is not None and not can_transition(task["status"], status):
            raise TaskRefused(400, f"invalid task status transition: {task['status']} -> {status}")
        material = {k: v for k, v in changes.items() if task.get(k) != v}
        if not material:
            return task  # a no-op update: no revision, no task_revised
        task.update(material, updated_at=NOW)
        task["revision"] += 1
        self.revisions[number].append(self._revision_row(task, who[0], who[1], who[2], summary, None))
        self._updated(task, "updated")
        self.emit(
            "task_revised",
            agent_id=self._effective_agent(task),
            task_number=number,
            revision=task["revision"],
            restored_from=None,
        )
        return task

    def _add_comment(self, number: int, body: str, author_type: str, author_id: str | None) -> dict[str, Any]:
        task = self.tasks.get(number)
        if task is None:
            raise TaskRefused(404, f"task #{number} not found")
        if len(body.strip()) < 4:
            raise TaskRefused(400, "invalid comment: comment body must be at least 4 characters")
        self._seq += 1
        comment = {
            "seq": self._seq,
            "id": str(uuid.uuid4()),
            "task_id": task["id"],
            "author_type": author_type,
            "author_id": author_id,
            "body": body.strip(),
            "worker_id": None,
            "metadata": {},
            "created_at": NOW,
        }
        self.comments.setdefault(number, []).append(comment)
        self.emit(
            "task_commented",
            agent_id=self._effective_agent(task),
            task_number=number,
            comment_id=comment["id"],
            seq=comment["seq"],
            author_type=author_type,
        )
        return comment

    # -- routes -----------------------------------------------------------------------------

    async def _write(
        self, request: web.Request, action: Callable[[int, dict[str, Any]], Any], key: str
    ) -> web.Response:
        number = int(request.match_info["number"])
        body = await request.json() if request.can_read_body else {}
        self.requests.append((request.method, request.path, body))
        try:
            return web.json_response({key: action(number, body)})
        except TaskRefused as refused:
            return web.json_response({"error": refused.error}, status=refused.status)

    @staticmethod
    def _who(body: dict[str, Any]) -> tuple[str, str | None, str]:
        return body.get("author_type") or "user", body.get("author_id"), body.get("source") or "api"

    async def _get(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        self.requests.append(("GET", request.path, None))
        if number not in self.tasks:
            return web.Response(status=404)
        return web.json_response({"task": self.tasks[number]})

    async def _update(self, request: web.Request) -> web.Response:
        def update(number: int, body: dict[str, Any]) -> dict[str, Any]:
            fields = ("title", "description", "status", "priority")
            changes = {k: body[k] for k in fields if k in body}
            return self._change(number, changes, self._who(body), body.get("edit_summary") or "Edited")

        return await self._write(request, update, "task")

    async def _approve(self, request: web.Request) -> web.Response:
        def approve(number: int, body: dict[str, Any]) -> dict[str, Any]:
            changes = {"status": "ready", "approved_by": body.get("approved_by"), "approved_at": NOW}
            return self._change(number, changes, self._who(body), body.get("edit_summary") or "Approved")

        return await self._write(request, approve, "task")

    async def _execute(self, request: web.Request) -> web.Response:
        def execute(number: int, body: dict[str, Any]) -> dict[str, Any]:
            task = self.tasks.get(number)
            if task is None:
                raise TaskRefused(404, f"task #{number} not found")
            if task["status"] in ("ready", "in_progress"):
                return task
            if task["status"] == "pending_approval":
                raise TaskRefused(409, f"task #{number} is pending approval")
            return self._change(number, {"status": "ready"}, self._who(body), "Queued for execution")

        return await self._write(request, execute, "task")

    async def _assign(self, request: web.Request) -> web.Response:
        def assign(number: int, body: dict[str, Any]) -> dict[str, Any]:
            agent = body["assigned_agent_id"]
            return self._change(number, {"assigned_agent_id": agent}, self._who(body), f"Assigned to {agent}")

        return await self._write(request, assign, "task")

    async def _comment(self, request: web.Request) -> web.Response:
        def comment(number: int, body: dict[str, Any]) -> dict[str, Any]:
            return self._add_comment(
                number, str(body.get("body", "")), body.get("author_type") or "user", body.get("author_id")
            )

        return await self._write(request, comment, "comment")

    async def _delete(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        self.requests.append(("DELETE", request.path, None))
        task = self.tasks.pop(number, None)
        if task is None:
            return web.Response(status=404)
        self._updated(task, "deleted")
        return web.json_response({"success": True, "message": f"Task #{number} deleted"})

    async def _list_comments(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        if number not in self.tasks:
            return web.json_response({"error": f"task #{number} not found"}, status=404)
        after = int(request.query.get("after", 0))
        limit = min(int(request.query.get("limit", 50)), 200)
        found = [c for c in self.comments.get(number, []) if c["seq"] > after][:limit]
        cursor = found[-1]["seq"] if len(found) == limit and found else None
        return web.json_response(
            {"comments": found, "total": len(self.comments.get(number, [])), "next_cursor": cursor}
        )

    async def _revision(self, request: web.Request) -> web.Response:
        number, revision = int(request.match_info["number"]), int(request.match_info["revision"])
        for row in self.revisions.get(number, []):
            if row["revision"] == revision:
                return web.json_response({"revision": row})
        return web.json_response({"error": f"revision {revision} not found for task #{number}"}, status=404)
