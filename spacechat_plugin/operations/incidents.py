"""Incidents as incident.io and Rootly run them (#15): opened by a failed worker, a provider
outage, a budget stop, or a person (from the incidents page or from any message); severity
sev1-sev4 (configurable); status triage -> investigating -> mitigated -> resolved -> closed,
each time recorded by itself; roles (a lead, communications, others) assigned by people; status
updates posted from the incident, with a reminder when none came for the severity's interval; a
timeline of every step plus pinned messages; and a retrospective draft from that timeline when
it closes. Each step is an event, an audit row, a timeline entry and a line in its thread.

Every incident has a card in the incidents channel, bound to it like a task card: it shows the
incident's state live and offers the next step (Acknowledge, Mitigated, Resolve, Close),
Escalate (to admins or owners) and, for a failed worker, Retry. While an incident with the same
`source` (e.g. `provider:local`) is active, opening it again returns that one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..config import IncidentsConfig, OpsConfig
from ..errors import BadRequest, Conflict, NotFound
from ..events import (
    SYSTEM,
    Actor,
    Event,
    IncidentAcknowledged,
    IncidentEscalated,
    IncidentOpened,
    IncidentResolved,
    IncidentUpdated,
    Payload,
    new_id,
)
from ..identity.permissions import Access, Principal
from ..store import audit, identity
from ..store import cards as card_store
from ..store import incidents as incident_store
from ..store import messages as message_store
from ..store.db import Database, WriteTx
from .clock import Clock, SystemClock, parse, stamp
from .retrospective import draft

log = logging.getLogger("spacechat.incidents")

ESCALATE_TO = ("role:admin", "role:owner")
ACTIONS = {
    "incident.acknowledge": "acknowledge",
    "incident.mitigate": "mitigate",
    "incident.resolve": "resolve",
    "incident.close": "close",
    "incident.escalate": "escalate",
}
# action -> (the statuses it may start from, the status it moves to)
MOVES = {
    "acknowledge": (("triage",), "investigating"),
    "mitigate": (("triage", "investigating"), "mitigated"),
    "resolve": (incident_store.ACTIVE, "resolved"),
    "close": ((*incident_store.ACTIVE, "resolved"), "closed"),
}
NEXT = {"triage": "acknowledge", "investigating": "mitigate", "mitigated": "resolve", "resolved": "close"}
LABELS = {"acknowledge": "Acknowledge", "mitigate": "Mitigated", "resolve": "Resolve", "close": "Close"}
STATE = {"triage": "error", "investigating": "warning", "mitigated": "info", "resolved": "ok", "closed": "ok"}
LEGACY_SEVERITY = {"critical": "sev1", "major": "sev2", "minor": "sev3"}


def card(incident: Mapping[str, Any]) -> list[dict[str, Any]]:
    details = incident["details"]
    blocks: list[dict[str, Any]] = [
        {
            "type": "status",
            "block_id": "state",
            "label": f"Incident #{incident['number']} ({incident['severity']}): {incident['status']}",
            "state": STATE[incident["status"]],
            "detail": incident["title"][:300],
        },
    ]
    if details.get("error"):
        blocks.append({"type": "section", "text": f"**Error:** {str(details['error'])[:2500]}"})
    if details.get("hint"):
        blocks.append({"type": "context", "elements": [str(details["hint"])[:300]]})
    if incident["status"] == "closed":
        return blocks
    step = NEXT[incident["status"]]
    elements: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": f"incident.{step}",
            "label": LABELS[step],
            "style": "primary",
            "scope": "incidents:manage",
        }
    ]
    if details.get("retry") and incident["status"] in incident_store.ACTIVE:
        elements.append({"type": "button", "action_id": "ops.retry", "label": "Retry", "scope": "ops:retry"})
    if incident["status"] in incident_store.ACTIVE:
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


@dataclass
class Step:
    """What one change to an incident records: its event, audit action, timeline entry and the
    line posted in its thread."""

    payload: type[Payload] | None
    action: str
    kind: str
    text: str
    change: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    # The timeline entry's data, when it is not `detail` (a pin keeps the quote there).
    data: dict[str, Any] | None = None
    # The @handles in `text` that notify (a reminder's lead).
    mentions: tuple[str, ...] = ()


Change = Callable[[WriteTx, dict[str, Any], str], Step]


class Incidents:
    def __init__(
        self,
        db: Database,
        access: Access,
        settings: OpsConfig,
        config: IncidentsConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.db, self.access, self.settings = db, access, settings
        self.config = config or IncidentsConfig()
        self.clock: Clock = clock or SystemClock()

    def _channel(self, org_id: str) -> dict[str, Any] | None:
        return self.access.channel_named(self.settings.incidents_channel, org_id)

    def severity(self, name: str | None) -> str:
        """A configured severity name (the old critical/major/minor are read as sev1-sev3)."""
        if name is None:
            return self.config.default_severity
        name = LEGACY_SEVERITY.get(name, name)
        names = [s.name for s in self.config.severities]
        if name not in names:
            raise BadRequest(
                f"severity is one of {', '.join(names)}", details=[{"path": "severity", "message": "unknown"}]
            )
        return name

    def _label(self, severity: str) -> str:
        return next((s.label for s in self.config.severities if s.name == severity), severity)

    async def open(
        self,
        *,
        org_id: str,
        kind: str,
        title: str,
        severity: str | None = None,
        details: Mapping[str, Any] | None = None,
        source: str | None = None,
        actor: Actor = SYSTEM,
        from_message: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        channel = self._channel(org_id)
        level = self.severity(severity)

        def create(tx: WriteTx) -> dict[str, Any]:
            if source is not None and (already := incident_store.open_with_source(tx, org_id, source)) is not None:
                return already
            at = stamp(self.clock.now())
            incident = incident_store.insert(
                tx,
                {
                    "id": new_id("inc"),
                    "org_id": org_id,
                    "kind": kind,
                    "source": source,
                    "title": title[:300],
                    "severity": level,
                    "status": "triage",
                    "details": dict(details or {}),
                    "channel_id": channel["id"] if channel else None,
                    "opened_at": at,
                    "opened_from": from_message["id"] if from_message else None,
                },
            )
            if channel is not None:
                posted = message_store.post_message(
                    tx,
                    actor=actor,
                    channel=channel,
                    thread_id=None,
                    text=f"Incident #{incident['number']}: {title}"[:300],
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
                details={"kind": kind, "title": title[:200], "source": source, "severity": level},
            )
            who = self._name(tx, actor.id) if actor.kind != "system" else "the system"
            self._timeline(tx, incident, at, actor, "opened", f"opened by {who} as {level}: {title[:200]}")
            if from_message is not None:
                text, data = self._pin(tx, from_message)
                self._timeline(tx, incident, at, actor, "pin", text, message_id=from_message["id"], data=data)
                self._note_in_thread(tx, from_message, actor, f"Incident #{incident['number']} opened from this")
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

    def _timeline(
        self,
        tx: WriteTx,
        incident: Mapping[str, Any],
        at: str,
        actor: Actor,
        kind: str,
        text: str,
        *,
        message_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        incident_store.add_timeline(
            tx,
            incident["id"],
            at=at,
            kind=kind,
            actor_kind=actor.kind,
            actor_id=actor.id,
            text=text,
            message_id=message_id,
            data=data,
        )

    @staticmethod
    def _name(tx: WriteTx, user_id: str | None) -> str:
        if not user_id:
            return "the system"
        user = identity.user_row(tx, user_id)
        return str(user["name"]) if user is not None else user_id

    def _pin(self, tx: WriteTx, message: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """A pinned message's timeline entry: its text and data (the quote, where it is)."""
        author = self._name(tx, message["author"]["id"])
        quote = " ".join(str(message["text"]).split())[:300]
        data = {"quote": f"{author}: {quote}", "channel_id": message["channel_id"], "thread_id": message["thread_id"]}
        return f"pinned a message of {author}: {quote}", data

    def _note_in_thread(self, tx: WriteTx, message: Mapping[str, Any], actor: Actor, text: str) -> None:
        channel = self.access.channels.get(message["channel_id"])
        if channel is not None:
            message_store.post_message(tx, actor=actor, channel=channel, thread_id=message["thread_id"], text=text)

    # -- changes ------------------------------------------------------------------------------

    async def _change(self, incident_id: str, actor: Actor, change: Change, *, ip: str | None) -> dict[str, Any]:
        """One step, in one transaction: the change, then its event, audit row, timeline entry,
        the card's refresh and a line in the incident's thread."""

        def run(tx: WriteTx) -> dict[str, Any]:
            before = incident_store.row(tx, incident_id)
            if before is None:
                raise NotFound("no such incident")
            at = stamp(self.clock.now())
            step = change(tx, before, at)
            incident = incident_store.row(tx, incident_id)
            assert incident is not None
            payload = (
                step.payload(incident=incident)  # type: ignore[call-arg]
                if step.payload is not None
                else IncidentUpdated(incident=incident, change=step.change, detail=step.detail)
            )
            self._emit(tx, payload, incident, actor)
            audit.append(
                tx,
                org_id=incident["org_id"],
                actor=actor,
                action=step.action,
                target_type="incident",
                target_id=incident_id,
                ip=ip,
                details=step.detail,
            )
            data = step.detail if step.data is None else step.data
            self._timeline(tx, incident, at, actor, step.kind, step.text, message_id=step.message_id, data=data)
            self._refresh_card(tx, incident, actor, f"Incident #{incident['number']} {step.text}", step.mentions)
            if incident["status"] == "closed" and before["status"] != "closed":
                self._retrospective(tx, incident, actor)
            return incident

        return await self.db.write(run)

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
        """acknowledge, mitigate, resolve, close, or escalate (to `role:admin`, `role:owner` or a
        user id)."""

        def change(tx: WriteTx, incident: dict[str, Any], at: str) -> Step:
            who = self._name(tx, actor.id) if actor.kind != "system" else "the system"
            tail = f": {note}" if note else ""
            if incident["status"] == "closed":
                raise Conflict("this incident is closed", code="incident_closed")
            if action == "escalate":
                if incident["status"] not in incident_store.ACTIVE:
                    raise Conflict("this incident is resolved", code="incident_resolved")
                incident_store.escalate(tx, incident_id, to)
                whom = (to or "").removeprefix("role:") + "s" if (to or "").startswith("role:") else self._name(tx, to)
                return Step(
                    IncidentEscalated,
                    "incident.escalated",
                    "escalated",
                    f"escalated to {whom} by {who}{tail}",
                    detail={"to": to, "note": note},
                )
            starts, status = MOVES[action]
            if incident["status"] not in starts:
                code = "already_acknowledged" if action == "acknowledge" else "wrong_status"
                raise Conflict(f"cannot {action} an incident that is {incident['status']}", code=code)
            incident_store.set_status(tx, incident_id, status, at, actor.id)
            payload = {"acknowledge": IncidentAcknowledged, "resolve": IncidentResolved}.get(action)
            verb = {"acknowledge": "acknowledged", "mitigate": "mitigated", "resolve": "resolved", "close": "closed"}
            detail = {"from": incident["status"], "to": status, "note": note}
            return Step(
                payload,
                f"incident.{verb[action]}",
                "status",
                f"{verb[action]} by {who}{tail}",
                change="status",
                detail=detail,
            )

        return await self._change(incident_id, actor, change, ip=ip)

    async def set_severity(self, incident_id: str, severity: str, actor: Actor, *, ip: str | None) -> dict[str, Any]:
        level = self.severity(severity)

        def change(tx: WriteTx, incident: dict[str, Any], at: str) -> Step:
            if incident["status"] == "closed":
                raise Conflict("this incident is closed", code="incident_closed")
            incident_store.set_severity(tx, incident_id, level)
            who = self._name(tx, actor.id)
            return Step(
                None,
                "incident.severity_changed",
                "severity",
                f"severity {incident['severity']} -> {level} by {who}",
                change="severity",
                detail={"from": incident["severity"], "to": level},
            )

        return await self._change(incident_id, actor, change, ip=ip)

    async def assign_role(
        self, incident_id: str, role: str, user_id: str, actor: Actor, *, ip: str | None
    ) -> dict[str, Any]:
        if role not in self.config.roles:
            raise BadRequest(
                f"role is one of {', '.join(self.config.roles)}", details=[{"path": "role", "message": "unknown"}]
            )

        def change(tx: WriteTx, incident: dict[str, Any], at: str) -> Step:
            incident_store.assign_role(tx, incident_id, role, user_id, actor.id, at)
            text = f"{self._name(tx, user_id)} is {role}, assigned by {self._name(tx, actor.id)}"
            return Step(
                None, "incident.role_assigned", "role", text, change="role", detail={"role": role, "user_id": user_id}
            )

        return await self._change(incident_id, actor, change, ip=ip)

    async def post_update(self, incident_id: str, text: str, actor: Actor, *, ip: str | None) -> dict[str, Any]:
        def change(tx: WriteTx, incident: dict[str, Any], at: str) -> Step:
            if incident["status"] == "closed":
                raise Conflict("this incident is closed", code="incident_closed")
            incident_store.updated(tx, incident_id, at)
            return Step(
                None,
                "incident.update_posted",
                "update",
                f"status update ({incident['status']}) by {self._name(tx, actor.id)}: {text[:500]}",
                change="update",
                detail={"text": text, "status": incident["status"]},
            )

        return await self._change(incident_id, actor, change, ip=ip)

    async def pin(
        self, incident_id: str, message: Mapping[str, Any], actor: Actor, *, ip: str | None
    ) -> dict[str, Any]:
        def change(tx: WriteTx, incident: dict[str, Any], at: str) -> Step:
            if incident_store.pinned(tx, incident_id, message["id"]):
                raise Conflict("this message is already pinned", code="already_pinned")
            # One timeline entry, the same as a pin made at opening: the retrospective lists it.
            text, data = self._pin(tx, message)
            return Step(
                None,
                "incident.message_pinned",
                "pin",
                text,
                change="pin",
                detail={"message_id": message["id"]},
                message_id=message["id"],
                data=data,
            )

        return await self._change(incident_id, actor, change, ip=ip)

    def _refresh_card(
        self, tx: WriteTx, incident: dict[str, Any], actor: Actor, line: str, mentions: tuple[str, ...] = ()
    ) -> None:
        """Redraw the incident's card and post `line` in its thread; `mentions`: the handles in it
        to notify (only those the step names: a person's update text may quote an @agent, which
        must not hand the agent the line)."""
        if not incident["message_id"]:
            return
        card_store.set_blocks(tx, incident["message_id"], card(incident))
        card_store.set_state(tx, incident["message_id"], {"incident": incident}, actor)
        channel = self.access.channels.get(incident["channel_id"] or "")
        thread = card_store.thread_of(tx, incident["message_id"])
        if channel is not None and thread is not None:
            message_store.post_message(
                tx, actor=actor, channel=channel, thread_id=thread, text=line[:3000], mentions=mentions
            )

    def _retrospective(self, tx: WriteTx, incident: dict[str, Any], actor: Actor) -> None:
        """At close: the draft from the timeline, kept with the incident and posted in its thread."""
        roles = incident_store.roles_tx(tx, incident["id"])
        text = draft(
            incident,
            incident_store.timeline_tx(tx, incident["id"]),
            roles,
            self._label(incident["severity"]),
            lambda user_id: self._name(tx, user_id),
        )
        incident_store.set_retrospective(tx, incident["id"], text)
        incident["retrospective"] = text
        self._emit(tx, IncidentUpdated(incident=incident, change="retrospective"), incident, SYSTEM)
        self._refresh_card(tx, incident, SYSTEM, text)

    async def resolve_source(self, org_id: str, source: str, note: str) -> None:
        """The cause cleared (a provider is back): resolve its open incident, if any."""
        incident_id = await incident_store.open_id_with_source(self.db, org_id, source)
        if incident_id is not None:
            await self.act(incident_id, "resolve", SYSTEM, note=note)

    # -- update reminders ---------------------------------------------------------------------

    async def sweep(self) -> list[str]:
        """Remind every active incident whose last update (or opening) is older than its
        severity's `update_every_minutes`, once per such quiet spell. Returns their ids."""
        now = self.clock.now()
        every = {s.name: s.update_every_minutes for s in self.config.severities}
        reminded = []
        for incident in await incident_store.active(self.db):
            minutes = every.get(incident["severity"], 0)
            quiet_since = max(incident["last_update_at"] or "", incident["reminded_at"] or "") or incident["opened_at"]
            if minutes and now - parse(quiet_since) >= timedelta(minutes=minutes):
                await self._remind(incident, minutes)
                reminded.append(incident["id"])
        return reminded

    async def _remind(self, incident: dict[str, Any], minutes: float) -> None:
        def change(tx: WriteTx, row: dict[str, Any], at: str) -> Step:
            incident_store.reminded(tx, row["id"], at)
            lead = incident_store.roles_tx(tx, row["id"]).get("lead")
            # The lead by @handle, which the line's mention turns into a notification and an inbox
            # entry, as an approval's escalation does (the raw id was shown as typed before).
            person = identity.user_row(tx, lead) if lead else None
            whom = f"@{person['handle']}" if person is not None else lead or "the incident team"
            return Step(
                None,
                "incident.update_reminder",
                "reminder",
                f"needs a status update: none for {minutes:g} minutes ({whom})",
                change="reminder",
                detail={"minutes": minutes, "lead": lead},
                mentions=(person["handle"],) if person is not None else (),
            )

        await self._change(incident["id"], SYSTEM, change, ip=None)

    async def sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reminder_sweep_seconds)
            try:
                await self.sweep()
            except Exception:
                log.exception("incident update reminders failed")

    # -- the card (cards.service.CardHandler) ------------------------------------------------

    async def check_interaction(self, who: Principal, message: Mapping[str, Any], action_id: str) -> None:
        return None

    async def handle_interaction(self, who: Principal, interaction: dict[str, Any], message: dict[str, Any]) -> bool:
        """The next step and Escalate from the incident's card (Retry is an operation)."""
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
