"""Incidents: opened by a failed worker, a provider outage, a budget stop, or a person; then
acknowledged, escalated and resolved, each step an event and an audit row.

Every incident has a card in the incidents channel, bound to it like a task card: it shows the
incident's state live and offers Acknowledge, Escalate (to admins or owners), Resolve and, for a
failed worker, Retry. While an incident with the same `source` (e.g. `provider:local`) is open,
opening it again returns that one instead of a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..cards.service import set_card_state
from ..errors import Conflict, NotFound
from ..events import (
    SYSTEM,
    Actor,
    Event,
    IncidentAcknowledged,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    Payload,
    new_id,
    now_rfc3339,
)
from ..store import audit
from ..store import messages as message_store
from ..store.db import Database, WriteTx, dumps, loads

if TYPE_CHECKING:
    from ..app import Spacechat

log = logging.getLogger("spacechat.incidents")

ESCALATE_TO = ("role:admin", "role:owner")
PAST = {"acknowledge": "incident.acknowledged", "escalate": "incident.escalated", "resolve": "incident.resolved"}
ACTIONS = {"incident.acknowledge": "acknowledge", "incident.resolve": "resolve", "incident.escalate": "escalate"}


def incident_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "number": row["number"],
        "org_id": row["org_id"],
        "kind": row["kind"],
        "source": row["source"],
        "title": row["title"],
        "severity": row["severity"],
        "status": row["status"],
        "details": loads(row["details"]),
        "channel_id": row["channel_id"],
        "message_id": row["message_id"],
        "escalated_to": row["escalated_to"],
        "opened_at": row["opened_at"],
        "acknowledged_at": row["acknowledged_at"],
        "acknowledged_by": row["acknowledged_by"],
        "resolved_at": row["resolved_at"],
        "resolved_by": row["resolved_by"],
    }


def card(incident: Mapping[str, Any]) -> list[dict[str, Any]]:
    state = {"open": "error", "acknowledged": "warning", "resolved": "ok"}[incident["status"]]
    details = incident["details"]
    blocks: list[dict[str, Any]] = [
        {
            "type": "status",
            "block_id": "state",
            "label": f"Incident #{incident['number']}: {incident['status']}",
            "state": state,
            "detail": incident["title"][:300],
        },
    ]
    if details.get("error"):
        blocks.append({"type": "section", "text": f"**Error:** {str(details['error'])[:2500]}"})
    if details.get("hint"):
        blocks.append({"type": "context", "elements": [str(details["hint"])[:300]]})
    if incident["status"] != "resolved":
        elements: list[dict[str, Any]] = []
        if incident["status"] == "open":
            elements.append(
                {
                    "type": "button",
                    "action_id": "incident.acknowledge",
                    "label": "Acknowledge",
                    "scope": "incidents:manage",
                }
            )
        elements.append(
            {
                "type": "button",
                "action_id": "incident.resolve",
                "label": "Resolve",
                "style": "primary",
                "scope": "incidents:manage",
            }
        )
        if details.get("retry"):
            elements.append({"type": "button", "action_id": "ops.retry", "label": "Retry", "scope": "ops:retry"})
        elements.append(
            {
                "type": "select",
                "action_id": "incident.escalate",
                "placeholder": "Escalate to…",
                "scope": "incidents:manage",
                "options": [{"label": "Admins", "value": "role:admin"}, {"label": "Owners", "value": "role:owner"}],
            }
        )
        blocks.append({"type": "actions", "block_id": "incident", "elements": elements})
    return blocks


class Incidents:
    def __init__(self, app: Spacechat) -> None:
        self.app = app

    def _channel(self, org_id: str) -> dict[str, Any] | None:
        name = self.app.settings.ops.incidents_channel
        return next((c for c in self.app.channels.values() if c["org_id"] == org_id and c["name"] == name), None)

    async def open(
        self,
        *,
        org_id: str,
        kind: str,
        title: str,
        severity: str = "major",
        details: Mapping[str, Any] | None = None,
        source: str | None = None,
        actor: Actor = SYSTEM,
    ) -> dict[str, Any]:
        channel = self._channel(org_id)

        def create(tx: WriteTx) -> dict[str, Any]:
            if source is not None:
                open_row = tx.one(
                    "SELECT * FROM incidents WHERE org_id = ? AND source = ? AND status != 'resolved'", (org_id, source)
                )
                if open_row is not None:
                    return incident_json(open_row)
            number = tx.one("SELECT COALESCE(MAX(number), 0) + 1 FROM incidents WHERE org_id = ?", (org_id,))[0]
            row = {
                "id": new_id("inc"),
                "org_id": org_id,
                "number": number,
                "kind": kind,
                "source": source,
                "title": title[:300],
                "severity": severity,
                "status": "open",
                "details": dumps(dict(details or {})),
                "channel_id": channel["id"] if channel else None,
                "message_id": None,
                "escalated_to": None,
                "opened_at": now_rfc3339(),
                "acknowledged_at": None,
                "acknowledged_by": None,
                "resolved_at": None,
                "resolved_by": None,
            }
            tx.execute(
                "INSERT INTO incidents (id, org_id, number, kind, source, title, severity, status, details, channel_id,"
                " message_id, escalated_to, opened_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by)"
                " VALUES (:id, :org_id, :number, :kind, :source, :title, :severity, :status, :details, :channel_id,"
                " :message_id, :escalated_to, :opened_at, :acknowledged_at, :acknowledged_by, :resolved_at,"
                " :resolved_by)",
                row,
            )
            incident = incident_json(row)
            if channel is not None:
                posted = message_store.post_message(
                    tx,
                    actor=actor,
                    channel=channel,
                    thread_id=None,
                    text=f"Incident #{number}: {title}"[:300],
                    blocks=card(incident),
                    card_state={"incident": incident},
                    metadata={"incident_id": incident["id"]},
                )
                tx.execute("UPDATE incidents SET message_id = ? WHERE id = ?", (posted.message["id"], incident["id"]))
                incident["message_id"] = posted.message["id"]
            self._emit(tx, IncidentOpened(incident=incident), incident, actor)
            audit.append(
                tx,
                org_id=org_id,
                actor=actor,
                action="incident.opened",
                target_type="incident",
                target_id=incident["id"],
                details={"kind": kind, "title": title[:200], "source": source},
            )
            return incident

        return await self.app.db.write(create)

    def _emit(self, tx: WriteTx, payload: Payload, incident: Mapping[str, Any], actor: Actor) -> None:
        channel = self.app.channels.get(incident["channel_id"] or "")
        tx.emit(
            Event(
                payload,
                actor=actor,
                org_id=incident["org_id"],
                team_id=channel["team_id"] if channel else None,
                channel_id=incident["channel_id"],
            )
        )

    async def act(
        self,
        incident_id: str,
        action: str,
        actor: Actor,
        *,
        to: str | None = None,
        note: str | None = None,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """acknowledge, escalate (to `role:admin`, `role:owner` or a user id) or resolve."""

        def change(tx: WriteTx) -> dict[str, Any]:
            row = tx.one("SELECT * FROM incidents WHERE id = ?", (incident_id,))
            if row is None:
                raise NotFound("no such incident")
            if row["status"] == "resolved":
                raise Conflict("this incident is resolved", code="incident_resolved")
            now = now_rfc3339()
            payload: Any
            if action == "acknowledge":
                if row["status"] == "acknowledged":
                    raise Conflict("this incident is already acknowledged", code="already_acknowledged")
                tx.execute(
                    "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ?, acknowledged_by = ?"
                    " WHERE id = ?",
                    (now, actor.id, incident_id),
                )
                payload = IncidentAcknowledged
            elif action == "escalate":
                tx.execute("UPDATE incidents SET escalated_to = ? WHERE id = ?", (to, incident_id))
                payload = IncidentEscalated
            else:
                tx.execute(
                    "UPDATE incidents SET status = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
                    (now, actor.id, incident_id),
                )
                payload = IncidentResolved
            incident = incident_json(tx.one("SELECT * FROM incidents WHERE id = ?", (incident_id,)))
            self._emit(tx, payload(incident=incident), incident, actor)
            audit.append(
                tx,
                org_id=incident["org_id"],
                actor=actor,
                action=PAST[action],
                target_type="incident",
                target_id=incident_id,
                ip=ip,
                details={"to": to, "note": note},
            )
            self._refresh_card(tx, incident, actor, note=note, to=to, action=action)
            return incident

        return await self.app.db.write(change)

    def _refresh_card(
        self, tx: WriteTx, incident: dict[str, Any], actor: Actor, *, note: str | None, to: str | None, action: str
    ) -> None:
        if not incident["message_id"]:
            return
        tx.execute("UPDATE messages SET blocks = ? WHERE id = ?", (dumps(card(incident)), incident["message_id"]))
        set_card_state(tx, incident["message_id"], {"incident": incident}, actor)
        channel = self.app.channels.get(incident["channel_id"] or "")
        thread = tx.one("SELECT thread_id FROM messages WHERE id = ?", (incident["message_id"],))
        if channel is not None and thread is not None:
            who = actor.id or "the system"
            words = {
                "acknowledge": f"acknowledged by {who}",
                "resolve": f"resolved by {who}",
                "escalate": f"escalated to {(to or '').removeprefix('role:')}s by {who}",
            }[action]
            text = f"Incident #{incident['number']} {words}" + (f": {note}" if note else "")
            message_store.post_message(tx, actor=actor, channel=channel, thread_id=thread["thread_id"], text=text)

    async def resolve_source(self, org_id: str, source: str, note: str) -> None:
        """The cause cleared (a provider is back): resolve its open incident, if any."""
        row = await self.app.db.fetchone(
            "SELECT id FROM incidents WHERE org_id = ? AND source = ? AND status != 'resolved'", (org_id, source)
        )
        if row is not None:
            await self.act(row["id"], "resolve", SYSTEM, note=note)


async def get(db: Database, incident_id: str) -> dict[str, Any] | None:
    row = await db.fetchone("SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return None if row is None else incident_json(row)


async def listing(db: Database, org_id: str, status: str | None, limit: int) -> list[dict[str, Any]]:
    if status:
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? AND status = ? ORDER BY number DESC LIMIT ?",
            (org_id, status, limit),
        )
    else:
        rows = await db.fetchall(
            "SELECT * FROM incidents WHERE org_id = ? ORDER BY number DESC LIMIT ?", (org_id, limit)
        )
    return [incident_json(row) for row in rows]
