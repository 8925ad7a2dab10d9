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
from typing import Any

from ..config import OpsConfig
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
from ..identity.permissions import Access, Principal
from ..store import audit
from ..store import cards as card_store
from ..store import incidents as incident_store
from ..store import messages as message_store
from ..store.db import Database, WriteTx

log = logging.getLogger("spacechat.incidents")

ESCALATE_TO = ("role:admin", "role:owner")
PAST = {"acknowledge": "incident.acknowledged", "escalate": "incident.escalated", "resolve": "incident.resolved"}
ACTIONS = {"incident.acknowledge": "acknowledge", "incident.resolve": "resolve", "incident.escalate": "escalate"}


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
    def __init__(self, db: Database, access: Access, settings: OpsConfig) -> None:
        self.db, self.access, self.settings = db, access, settings

    def _channel(self, org_id: str) -> dict[str, Any] | None:
        return self.access.channel_named(self.settings.incidents_channel, org_id)

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
            if source is not None and (already := incident_store.open_with_source(tx, org_id, source)) is not None:
                return already
            incident = incident_store.insert(
                tx,
                {
                    "id": new_id("inc"),
                    "org_id": org_id,
                    "kind": kind,
                    "source": source,
                    "title": title[:300],
                    "severity": severity,
                    "status": "open",
                    "details": dict(details or {}),
                    "channel_id": channel["id"] if channel else None,
                    "message_id": None,
                    "escalated_to": None,
                    "opened_at": now_rfc3339(),
                    "acknowledged_at": None,
                    "acknowledged_by": None,
                    "resolved_at": None,
                    "resolved_by": None,
                },
            )
            number = incident["number"]
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
                incident_store.set_message(tx, incident["id"], posted.message["id"])
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

        return await self.db.write(create)

    def _emit(self, tx: WriteTx, payload: Payload, incident: Mapping[str, Any], actor: Actor) -> None:
        channel = self.access.channels.get(incident["channel_id"] or "")
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
            row = incident_store.row(tx, incident_id)
            if row is None:
                raise NotFound("no such incident")
            if row["status"] == "resolved":
                raise Conflict("this incident is resolved", code="incident_resolved")
            now = now_rfc3339()
            payload: Any
            if action == "acknowledge":
                if row["status"] == "acknowledged":
                    raise Conflict("this incident is already acknowledged", code="already_acknowledged")
                incident_store.acknowledge(tx, incident_id, now, actor.id)
                payload = IncidentAcknowledged
            elif action == "escalate":
                incident_store.escalate(tx, incident_id, to)
                payload = IncidentEscalated
            else:
                incident_store.resolve(tx, incident_id, now, actor.id)
                payload = IncidentResolved
            incident = incident_store.row(tx, incident_id)
            assert incident is not None
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

        return await self.db.write(change)

    def _refresh_card(
        self, tx: WriteTx, incident: dict[str, Any], actor: Actor, *, note: str | None, to: str | None, action: str
    ) -> None:
        if not incident["message_id"]:
            return
        card_store.set_blocks(tx, incident["message_id"], card(incident))
        card_store.set_state(tx, incident["message_id"], {"incident": incident}, actor)
        channel = self.access.channels.get(incident["channel_id"] or "")
        thread = card_store.thread_of(tx, incident["message_id"])
        if channel is not None and thread is not None:
            who = actor.id or "the system"
            words = {
                "acknowledge": f"acknowledged by {who}",
                "resolve": f"resolved by {who}",
                "escalate": f"escalated to {(to or '').removeprefix('role:')}s by {who}",
            }[action]
            text = f"Incident #{incident['number']} {words}" + (f": {note}" if note else "")
            message_store.post_message(tx, actor=actor, channel=channel, thread_id=thread, text=text)

    async def resolve_source(self, org_id: str, source: str, note: str) -> None:
        """The cause cleared (a provider is back): resolve its open incident, if any."""
        incident_id = await incident_store.open_id_with_source(self.db, org_id, source)
        if incident_id is not None:
            await self.act(incident_id, "resolve", SYSTEM, note=note)

    # -- the card (cards.service.CardHandler) ------------------------------------------------

    async def check_interaction(self, who: Principal, message: Mapping[str, Any], action_id: str) -> None:
        return None

    async def handle_interaction(self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]) -> bool:
        """Acknowledge, escalate and resolve from the incident's card (Retry is an operation)."""
        incident_id = (message.get("metadata") or {}).get("incident_id")
        action = ACTIONS.get(interaction["action_id"])
        if not incident_id or action is None:
            return False
        values = interaction["values"]
        to = values[0] if isinstance(values, list) and values else None
        try:
            await self.act(incident_id, action, who.actor, to=to)
        except (Conflict, NotFound) as exc:
            log.info("%s on %s: %s", interaction["action_id"], message["id"], exc.message)
        return True
