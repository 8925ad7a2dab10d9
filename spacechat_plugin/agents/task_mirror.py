"""Spacebot's tasks on Spacechat's board (issue 14).

A running Spacebot owns its tasks: the bridge reports every change (`spacebot_task_updated`,
`_revised`, `_commented`) and this service mirrors them, one row per Spacebot task number
(`tasks.source` / `source_number`, migration 0010), with a card in the agent's home channel.
Spacebot stays the source of truth for status: its changes are applied as they are, and
Spacechat's actions on a mirrored task (a card's buttons, the task routes) go to Spacebot through
`HostAPI.task_action`; only Spacebot's answer changes the mirror. A refusal is a 502 naming
Spacebot's answer, and nothing stored changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..cards.service import CardService
from ..errors import BadGateway, Conflict
from ..events import SYSTEM, Actor
from ..hookspecs import HostAPI, HostRefused, hookimpl
from ..identity.permissions import Access
from ..instance import Instance
from ..store import audit, identity, tenancy
from ..store import tasks as task_store
from ..store.db import Database, WriteTx
from .home import home_channel

log = logging.getLogger("spacechat.tasks")

SOURCE = "spacebot"
# A Spacechat status change, as the action Spacebot has a route for.
STATUS_ACTION = {"backlog": "reject", "in_progress": "start", "done": "complete", "failed": "fail"}


def _fields(task: Mapping[str, Any]) -> dict[str, Any]:
    """Spacebot's `Task` (src/tasks/store.rs) as the columns of a Spacechat task."""
    fields: dict[str, Any] = {
        "title": str(task.get("title") or f"Task #{task.get('task_number')}")[:500],
        "description": str(task.get("description") or ""),
        "assignee_id": task.get("assigned_agent_id") or task.get("owner_agent_id"),
        "approved_by": task.get("approved_by"),
        "approved_at": task.get("approved_at"),
        "completed_at": task.get("completed_at"),
    }
    if task.get("status") in task_store.STATUSES:
        fields["status"] = task["status"]
    if task.get("priority") in task_store.PRIORITIES:
        fields["priority"] = task["priority"]
    return fields


class TaskMirror:
    def __init__(
        self, db: Database, access: Access, instance: Instance, cards: CardService, host: HostAPI | None
    ) -> None:
        self.db, self.access, self.instance, self.cards, self.host = db, access, instance, cards, host

    def _actor(self, agent_id: str | None) -> Actor:
        known = {agent["id"] for agent in self.host.agents()} if self.host is not None else set()
        return Actor("agent", agent_id) if agent_id in known else SYSTEM

    def _home(self, agent_id: str | None) -> dict[str, Any] | None:
        if agent_id is None:
            return None
        return home_channel(self.host, self.access, self.instance.org_id, agent_id)

    # -- Spacebot's changes (hooks the bridge calls) ------------------------------------------

    @hookimpl
    async def spacebot_task_updated(
        self, agent_id: str | None, task_number: int, status: str, action: str, task: Mapping[str, Any]
    ) -> None:
        home = self._home(agent_id)
        org_id = home["org_id"] if home else self.instance.org_id
        actor = self._actor(agent_id)
        existing = await task_store.by_source(self.db, org_id, SOURCE, task_number)
        if action == "deleted" or status == "deleted":
            if existing is not None and existing["deleted_at"] is None:
                gone = await self.db.write(lambda tx: task_store.mirror_delete(tx, existing["id"], actor))
                await self.cards.task_changed(gone, existing["status"], "deleted")
            return
        fields = _fields(task)
        if "status" not in fields:
            log.warning("Spacebot task #%d has no status Spacechat knows (%r): not mirrored", task_number, status)
            return
        if existing is None:
            created = await self.db.write(lambda tx: self._create(tx, org_id, home, task_number, fields, actor, task))
            await self.cards.task_changed(created, None, "created")
            return
        await self.apply(existing, task, actor)

    def _create(
        self,
        tx: WriteTx,
        org_id: str,
        home: dict[str, Any] | None,
        number: int,
        fields: dict[str, Any],
        actor: Actor,
        task: Mapping[str, Any],
    ) -> dict[str, Any]:
        team_id = home["team_id"] if home else tenancy.first_team_id(tx, org_id)
        created = task_store.create(
            tx,
            org_id=org_id,
            team_id=team_id,
            channel_id=home["id"] if home else None,
            title=fields["title"],
            description=fields["description"],
            status=fields["status"],
            priority=fields.get("priority", "medium"),
            assignee_id=fields["assignee_id"],
            owner_agent_id=task.get("owner_agent_id"),
            actor=actor,
            source=(SOURCE, number),
        )
        created, _ = task_store.mirror_apply(tx, created["id"], fields, actor, revision=task.get("revision"))
        if home is not None:
            self.cards.post_task_card(tx, created, home, actor, text=f"Spacebot task #{number}: {created['title']}")
        return created

    async def apply(self, existing: dict[str, Any], task: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Take Spacebot's version of a mirrored task; an approval it records settles the cards."""
        fields = _fields(task)
        updated, previous = await self.db.write(
            lambda tx: task_store.mirror_apply(tx, existing["id"], fields, actor, revision=task.get("revision"))
        )
        if previous == "pending_approval":
            await self.cards.settle_approval(updated, "Approved" if updated["status"] == "ready" else "Rejected", actor)
        if previous is not None or updated["updated_at"] != existing["updated_at"]:
            await self.cards.task_changed(updated, previous, "status" if previous else "edited")
        return updated

    @hookimpl
    async def spacebot_task_revised(
        self, agent_id: str | None, task_number: int, revision: int, restored_from: int | None, summary: Any
    ) -> None:
        existing = await task_store.by_source(self.db, self.instance.org_id, SOURCE, task_number)
        if existing is None:
            return
        summary = dict(summary or {})
        author = summary.get("author_id") or summary.get("author_type") or "Spacebot"
        text = str(summary.get("edit_summary") or f"Revision {revision}")
        if restored_from is not None:
            text = f"{text} (restored revision {restored_from})"
        details = {
            "revision": revision,
            "restored_from": restored_from,
            "author_type": summary.get("author_type"),
            "author_id": summary.get("author_id"),
            "source": summary.get("source"),
        }
        actor = self._actor(str(author)) if summary.get("author_type") == "agent" else SYSTEM

        def record(tx: WriteTx) -> None:
            if not task_store.has_history(tx, existing["id"], "revision", "revision", revision):
                task_store.revised(
                    tx, existing["id"], f"Spacebot revision {revision} by {author}: {text}", actor, details
                )

        await self.db.write(record)

    @hookimpl
    async def spacebot_task_commented(self, agent_id: str | None, task_number: int, comment: Any) -> None:
        existing = await task_store.by_source(self.db, self.instance.org_id, SOURCE, task_number)
        if existing is not None:
            await self.db.write(lambda tx: self._comment(tx, existing["id"], comment))

    def _comment(self, tx: WriteTx, task_id: str, comment: Mapping[str, Any]) -> dict[str, Any] | None:
        """A Spacebot comment joins the task's comments once, by its id."""
        if task_store.has_history(tx, task_id, "comment", "spacebot_comment_id", str(comment.get("id"))):
            return None
        author_type, author_id = comment.get("author_type"), comment.get("author_id")
        actor = Actor("agent", str(author_id)) if author_type in ("agent", "worker") and author_id else SYSTEM
        details = {"spacebot_comment_id": str(comment.get("id")), "author_type": author_type, "author_id": author_id}
        return task_store.comment(tx, task_id, str(comment.get("body") or ""), actor, details)

    # -- Spacechat's actions, sent to Spacebot -------------------------------------------------

    async def act(
        self, task: dict[str, Any], action: str, actor: Actor, changes: Mapping[str, Any], ip: str | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """Ask Spacebot to do `action`; apply its answer. Raises BadGateway when it refuses."""
        answer = await self._ask(task, action, actor, changes)
        if action == "comment":
            await self.db.write(lambda tx: self._comment(tx, task["id"], answer["comment"]))
            fresh = await task_store.get(self.db, task["id"])
            return fresh or task, None
        updated = await self.apply(task, answer["task"], actor)
        if action in ("approve", "reject"):
            await self.db.write(
                lambda tx: audit.append(
                    tx,
                    org_id=task["org_id"],
                    actor=actor,
                    action=f"task.{action}d",
                    target_type="task",
                    target_id=task["id"],
                    ip=ip,
                    details={"number": task["number"], "spacebot_task": task["source"]["number"], **changes},
                )
            )
        return updated, task["status"] if updated["status"] != task["status"] else None

    async def edit(
        self, task: dict[str, Any], edits: Mapping[str, Any], status: str | None, reason: str | None, actor: Actor
    ) -> tuple[dict[str, Any], str | None]:
        """A PATCH of a mirrored task: its fields, then its status, each as Spacebot's route."""
        updated, previous = task, None
        if edits:
            updated, _ = await self.act(updated, "edit", actor, edits)
        if status is not None and status != updated["status"]:
            action = "approve" if updated["status"] == "pending_approval" and status == "ready" else None
            action = action or STATUS_ACTION.get(status) or "reopen"
            updated, previous = await self.act(updated, action, actor, {"reason": reason})
        return updated, previous

    async def _ask(self, task: dict[str, Any], action: str, actor: Actor, changes: Mapping[str, Any]) -> dict[str, Any]:
        if self.host is None:
            raise Conflict("no host runs: Spacebot's tasks cannot be changed now", code="no_host")
        user = await identity.get_user(self.db, actor.id or "") if actor.id else None
        who = {"kind": actor.kind, "id": actor.id, "name": (user or {}).get("name") or actor.id or "Spacechat"}
        try:
            return await self.host.task_action(
                source=task["source"]["kind"],
                number=int(task["source"]["number"]),
                action=action,
                actor=who,
                changes={k: v for k, v in changes.items() if v is not None},
            )
        except HostRefused as refused:
            raise BadGateway(
                str(refused), code="host_refused", details={"status": refused.status, "answer": refused.answer}
            ) from None
        except LookupError as exc:
            raise Conflict(
                f"this host cannot act on {task['source']['kind']} tasks: {exc}", code="no_task_source"
            ) from None
