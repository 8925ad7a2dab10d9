"""Tasks, on Spacebot's model: its statuses and its allowed transitions, with history, comments
and the cards that show a task, all changed in one transaction with their events.

Transitions (Spacebot's `can_transition`, with its `failed` lineage): any status may go back to
`backlog`; pending_approval -> ready (approve); backlog -> ready; ready -> in_progress;
in_progress -> done | ready | failed; done -> ready; failed -> ready. Rejecting a pending
approval sends the task to `backlog` (Spacebot's any -> backlog), recorded as a rejection.

A task another system owns (`source`, e.g. a running Spacebot's task `source_number`) is a
mirror: its changes come from the source as they are (`mirror_apply`, no transition rules, the
source decided), and a task deleted there leaves the board but keeps its history.
"""

from __future__ import annotations

from typing import Any

from ..errors import Conflict
from ..events import (
    Actor,
    Event,
    MessageUpdated,
    TaskAssigned,
    TaskCompleted,
    TaskCreated,
    TaskUpdated,
    new_id,
    now_rfc3339,
)
from .db import Database, WriteTx, dumps, loads
from .dialect import POSTGRES
from .shapes import message_json

STATUSES = ("pending_approval", "backlog", "ready", "in_progress", "done", "failed")
PRIORITIES = ("critical", "high", "medium", "low")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "pending_approval": ("ready", "backlog"),
    "backlog": ("ready",),
    "ready": ("in_progress", "backlog"),
    "in_progress": ("done", "ready", "failed", "backlog"),
    "done": ("ready", "backlog"),
    "failed": ("ready", "backlog"),
}


# What each task action does: the status it moves to (assign moves none).
ACTIONS = ("approve", "reject", "assign", "complete", "start", "fail", "reopen")
ACTION_TARGET = {
    "approve": "ready",
    "reject": "backlog",
    "complete": "done",
    "start": "in_progress",
    "fail": "failed",
    "reopen": "ready",
}


def allowed(status: str) -> tuple[str, ...]:
    return TRANSITIONS[status]


def task_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "org_id": row["org_id"],
        "team_id": row["team_id"],
        "channel_id": row["channel_id"],
        "title": row["title"],
        "description": row["description"],
        "status": row["status"],
        "priority": row["priority"],
        "assignee_id": row["assignee_id"],
        "owner_agent_id": row["owner_agent_id"],
        "created_by": row["created_by"],
        "approved_by": row["approved_by"],
        "approved_at": row["approved_at"],
        "completed_at": row["completed_at"],
        "last_error": row["last_error"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "allowed_transitions": list(TRANSITIONS[row["status"]]),
        "source": (
            {"kind": row["source"], "number": row["source_number"], "revision": row["source_revision"]}
            if row["source"]
            else None
        ),
        "deleted_at": row["deleted_at"],
    }


def card_snapshot(task: dict[str, Any]) -> dict[str, Any]:
    """What a task card shows of its task."""
    return {key: task[key] for key in ("number", "title", "status", "priority", "assignee_id", "allowed_transitions")}


def _row(tx: WriteTx, task_id: str) -> Any:
    return tx.one("SELECT * FROM tasks WHERE id = ?", (task_id,))


def _history(
    tx: WriteTx,
    task_id: str,
    kind: str,
    actor: Actor,
    *,
    from_status: str | None = None,
    to_status: str | None = None,
    text: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    tx.execute(
        "INSERT INTO task_history (task_id, kind, actor_kind, actor_id, from_status, to_status, text, details,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (task_id, kind, actor.kind, actor.id, from_status, to_status, text, dumps(details or {}), now_rfc3339()),
    )


def _envelope(task: dict[str, Any], actor: Actor) -> dict[str, Any]:
    return {"actor": actor, "org_id": task["org_id"], "team_id": task["team_id"], "channel_id": task["channel_id"]}


def refresh_cards(tx: WriteTx, task: dict[str, Any], actor: Actor) -> None:
    """Every card bound to the task shows its new state: message.updated, in place."""
    for link in tx.all("SELECT message_id FROM task_cards WHERE task_id = ?", (task["id"],)):
        row = tx.one("SELECT * FROM messages WHERE id = ?", (link["message_id"],))
        state = loads(row["card_state"]) or {}
        state.setdefault("tasks", {})[task["id"]] = card_snapshot(task)
        tx.execute(
            "UPDATE messages SET card_state = ?, updated_at = ? WHERE id = ?", (dumps(state), now_rfc3339(), row["id"])
        )
        message = message_json(tx.one("SELECT * FROM messages WHERE id = ?", (row["id"],)))
        tx.emit(
            Event(
                MessageUpdated(message=message),
                actor=actor,
                org_id=message["org_id"],
                team_id=message["team_id"],
                channel_id=message["channel_id"],
                thread_id=message["thread_id"],
            )
        )


def bind_card(tx: WriteTx, task_id: str, message_id: str) -> None:
    tx.execute("INSERT OR IGNORE INTO task_cards (task_id, message_id) VALUES (?, ?)", (task_id, message_id))


def create(
    tx: WriteTx,
    *,
    org_id: str,
    team_id: str,
    channel_id: str | None,
    title: str,
    description: str,
    status: str,
    priority: str,
    assignee_id: str | None,
    owner_agent_id: str | None,
    actor: Actor,
    source: tuple[str, int] | None = None,
) -> dict[str, Any]:
    number = tx.one("SELECT COALESCE(MAX(number), 0) + 1 FROM tasks WHERE org_id = ?", (org_id,))[0]
    now = now_rfc3339()
    row = {
        "id": new_id("task"),
        "org_id": org_id,
        "number": number,
        "team_id": team_id,
        "channel_id": channel_id,
        "title": title,
        "description": description,
        "status": status,
        "priority": priority,
        "assignee_id": assignee_id,
        "owner_agent_id": owner_agent_id,
        "created_by": actor.id,
        "approved_by": None,
        "approved_at": None,
        "completed_at": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "source": source[0] if source else None,
        "source_number": source[1] if source else None,
        "source_revision": None,
        "deleted_at": None,
    }
    tx.execute(
        "INSERT INTO tasks (id, org_id, number, team_id, channel_id, title, description, status, priority,"
        " assignee_id, owner_agent_id, created_by, approved_by, approved_at, completed_at, last_error, created_at,"
        " updated_at, source, source_number) VALUES (:id, :org_id, :number, :team_id, :channel_id, :title,"
        " :description, :status, :priority, :assignee_id, :owner_agent_id, :created_by, :approved_by, :approved_at,"
        " :completed_at, :last_error, :created_at, :updated_at, :source, :source_number)",
        row,
    )
    _history(tx, row["id"], "created", actor, to_status=status)
    task = task_json(row)
    tx.emit(Event(TaskCreated(task=task), **_envelope(task, actor)))
    return task


def transition(
    tx: WriteTx, task_id: str, to: str, actor: Actor, *, reason: str | None = None, kind: str = "status"
) -> tuple[dict[str, Any], str]:
    """Move a task to `to`, or raise Conflict naming the allowed transitions. Returns the task and
    the status it had."""
    row = _row(tx, task_id)
    current = row["status"]
    if to not in TRANSITIONS[current]:
        raise Conflict(
            f"a task in {current} cannot move to {to}; it can move to {', '.join(TRANSITIONS[current])}",
            code="illegal_transition",
            details={"status": current, "allowed": list(TRANSITIONS[current])},
        )
    now = now_rfc3339()
    sets: dict[str, str | None] = {"status": to, "updated_at": now}
    if current == "pending_approval" and to == "ready":
        sets.update(approved_by=actor.id, approved_at=now)
    if to == "done":
        sets["completed_at"] = now
    elif current == "done":
        sets["completed_at"] = None
    if to == "failed" and reason:
        sets["last_error"] = reason[:1000]
    tx.execute(f"UPDATE tasks SET {', '.join(f'{k} = :{k}' for k in sets)} WHERE id = :id", {**sets, "id": task_id})
    _history(tx, task_id, kind, actor, from_status=current, to_status=to, text=reason)
    task = task_json(_row(tx, task_id))
    tx.emit(Event(TaskUpdated(task=task, change=kind, previous_status=current), **_envelope(task, actor)))
    if to == "done":
        tx.emit(Event(TaskCompleted(task=task), **_envelope(task, actor)))
    refresh_cards(tx, task, actor)
    return task, current


def assign(tx: WriteTx, task_id: str, assignee_id: str | None, actor: Actor) -> dict[str, Any]:
    previous = _row(tx, task_id)["assignee_id"]
    tx.execute("UPDATE tasks SET assignee_id = ?, updated_at = ? WHERE id = ?", (assignee_id, now_rfc3339(), task_id))
    _history(tx, task_id, "assigned", actor, details={"from": previous, "to": assignee_id})
    task = task_json(_row(tx, task_id))
    tx.emit(Event(TaskAssigned(task=task, previous_assignee_id=previous), **_envelope(task, actor)))
    refresh_cards(tx, task, actor)
    return task


def edit(tx: WriteTx, task_id: str, changes: dict[str, Any], actor: Actor) -> dict[str, Any]:
    allowed_fields = {"title", "description", "priority"}
    assert set(changes) <= allowed_fields
    if changes:
        tx.execute(
            f"UPDATE tasks SET {', '.join(f'{k} = :{k}' for k in changes)}, updated_at = :now WHERE id = :id",
            {**changes, "now": now_rfc3339(), "id": task_id},
        )
        _history(tx, task_id, "edited", actor, details=changes)
    task = task_json(_row(tx, task_id))
    tx.emit(Event(TaskUpdated(task=task, change="edited"), **_envelope(task, actor)))
    refresh_cards(tx, task, actor)
    return task


def comment(
    tx: WriteTx, task_id: str, text: str, actor: Actor, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    _history(tx, task_id, "comment", actor, text=text, details=details)
    tx.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now_rfc3339(), task_id))
    task = task_json(_row(tx, task_id))
    tx.emit(Event(TaskUpdated(task=task, change="comment"), **_envelope(task, actor)))
    return task


def history_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "actor": {"kind": row["actor_kind"], "id": row["actor_id"]},
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "text": row["text"],
        "details": loads(row["details"]),
        "created_at": row["created_at"],
    }


async def get(db: Database, task_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM tasks WHERE id = ?", (task_id,))
    return None if row is None else task_json(row)


async def listing(
    db: Database, org_id: str, *, team_id: str | None, status: str | None, assignee_id: str | None, limit: int
) -> list[dict[str, Any]]:
    clauses: list[str] = ["org_id = ?", "deleted_at IS NULL"]
    params: list[Any] = [org_id]
    for column, value in (("team_id", team_id), ("status", status), ("assignee_id", assignee_id)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    rows = await db.fetchall(
        f"SELECT * FROM tasks WHERE {' AND '.join(clauses)} ORDER BY number DESC LIMIT ?", (*params, limit)
    )
    return [task_json(row) for row in rows]


async def history(db: Database, task_id: str, *, comments_only: bool = False) -> list[dict[str, Any]]:
    kind = "AND kind = 'comment'" if comments_only else ""
    rows = await db.fetchall(f"SELECT * FROM task_history WHERE task_id = ? {kind} ORDER BY id", (task_id,))
    return [history_json(row) for row in rows]


# -- mirrors of another system's tasks ---------------------------------------------------------

MIRRORED = ("title", "description", "status", "priority", "assignee_id", "approved_by", "approved_at", "completed_at")


def by_source_tx(tx: WriteTx, org_id: str, source: str, number: int) -> dict[str, Any] | None:
    row = tx.one("SELECT * FROM tasks WHERE org_id = ? AND source = ? AND source_number = ?", (org_id, source, number))
    return None if row is None else task_json(row)


async def by_source(db: Database, org_id: str, source: str, number: int) -> dict[str, Any] | None:
    row = await db.fetchone(
        "SELECT * FROM tasks WHERE org_id = ? AND source = ? AND source_number = ?", (org_id, source, number)
    )
    return None if row is None else task_json(row)


def mirror_apply(
    tx: WriteTx, task_id: str, fields: dict[str, Any], actor: Actor, *, revision: int | None = None
) -> tuple[dict[str, Any], str | None]:
    """Take the source's version of a mirrored task as it is (its status included: the source
    decided the transition). Returns the task and its previous status when the status changed."""
    row = _row(tx, task_id)
    changes = {k: v for k, v in fields.items() if k in MIRRORED and row[k] != v}
    sets: dict[str, Any] = {**changes, "deleted_at": None}
    if revision is not None:
        sets["source_revision"] = max(revision, row["source_revision"] or 0)
    if not changes and row["deleted_at"] is None:
        if revision is not None:
            tx.execute("UPDATE tasks SET source_revision = ? WHERE id = ?", (sets["source_revision"], task_id))
        return task_json(_row(tx, task_id)), None
    sets["updated_at"] = now_rfc3339()
    tx.execute(f"UPDATE tasks SET {', '.join(f'{k} = :{k}' for k in sets)} WHERE id = :id", {**sets, "id": task_id})
    previous = row["status"] if "status" in changes else None
    if previous is not None:
        _history(tx, task_id, "status", actor, from_status=previous, to_status=changes["status"])
    if "assignee_id" in changes:
        _history(tx, task_id, "assigned", actor, details={"from": row["assignee_id"], "to": changes["assignee_id"]})
    edits: dict[str, Any] = {k: changes[k] for k in ("title", "description", "priority") if k in changes}
    if edits:
        _history(tx, task_id, "edited", actor, details=edits)
    task = task_json(_row(tx, task_id))
    envelope = _envelope(task, actor)
    tx.emit(
        Event(TaskUpdated(task=task, change="status" if previous else "edited", previous_status=previous), **envelope)
    )
    if "assignee_id" in changes:
        tx.emit(Event(TaskAssigned(task=task, previous_assignee_id=row["assignee_id"]), **envelope))
    if previous is not None and changes["status"] == "done":
        tx.emit(Event(TaskCompleted(task=task), **envelope))
    refresh_cards(tx, task, actor)
    return task, previous


def mirror_delete(tx: WriteTx, task_id: str, actor: Actor) -> dict[str, Any]:
    """Deleted in its source: off the board (listings skip it), its history and cards kept."""
    now = now_rfc3339()
    tx.execute("UPDATE tasks SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, task_id))
    _history(tx, task_id, "deleted", actor)
    task = task_json(_row(tx, task_id))
    tx.emit(Event(TaskUpdated(task=task, change="deleted"), **_envelope(task, actor)))
    return task


def has_history(tx: WriteTx, task_id: str, kind: str, key: str, value: Any) -> bool:
    """Whether the task's history has an entry of `kind` whose details carry `key` = `value`
    (a comment or revision already taken from the source)."""
    if tx.dialect == POSTGRES and not isinstance(value, str):
        value = dumps(value)  # Postgres's json_extract answers text (migrations/postgres/0001_initial.sql)
    return (
        tx.one(
            "SELECT 1 FROM task_history WHERE task_id = ? AND kind = ? AND json_extract(details, ?) = ?",
            (task_id, kind, f"$.{key}", value),
        )
        is not None
    )


def revised(tx: WriteTx, task_id: str, text: str, actor: Actor, details: dict[str, Any]) -> dict[str, Any]:
    """The source recorded a revision of the task's specification: it joins the history."""
    _history(tx, task_id, "revision", actor, text=text, details=details)
    task = task_json(_row(tx, task_id))
    tx.emit(Event(TaskUpdated(task=task, change="revision"), **_envelope(task, actor)))
    return task
