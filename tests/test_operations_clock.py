"""What depends on time, with a clock moved by hand: a pending approval escalates, then times out
to a denial; an incident goes through its whole life with update reminders per severity, roles,
its timeline and the retrospective drafted from it. The services run in-process on a real SQLite
file (the composition root with no agent host), so the test sets their clocks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from spacechat_plugin.app import Spacechat
from spacechat_plugin.config import settings_from_mapping
from spacechat_plugin.errors import Conflict
from spacechat_plugin.events import SYSTEM, Actor
from spacechat_plugin.store import audit, chat, identity
from spacechat_plugin.store import incidents as incident_store
from spacechat_plugin.store import log as event_log
from spacechat_plugin.store import messages as message_store

pytestmark = pytest.mark.asyncio


class FakeClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Spacechat]:
    settings = settings_from_mapping(
        {
            "enabled": True,
            "data_dir": str(tmp_path / "data"),
            "runtime": {"mode": "none"},
            "approvals": {
                "policies": [{"tool": "restart_service", "policy": "always", "risk": "high"}],
                "escalate_after_minutes": 30,
                "escalate_to": "role:owner",
                "timeout_minutes": 120,
            },
        }
    )
    running = Spacechat(settings, None)
    await running.start()
    yield running
    await running.stop()


async def audit_rows(app: Spacechat, action: str) -> list[dict[str, Any]]:
    return await audit.query(
        app.db, org_id=app.instance.org_id, actor_id=None, action=action, since=None, until=None, before=None, limit=100
    )


async def ask_approval(app: Spacechat, text: str) -> tuple[asyncio.Task[dict[str, Any] | None], str, dict[str, Any]]:
    """A person's message in #spacebot whose turn asks to run `restart_service`: the waiting
    call, its thread and its pending approval."""
    channel = app.access.channel_named("spacebot", app.instance.org_id)
    assert channel is not None
    posted = await app.db.write(
        lambda tx: message_store.post_message(
            tx, actor=Actor("user", "u_sam"), channel=channel, thread_id=None, text=text
        )
    )
    thread_id = posted.thread["id"]
    asked = asyncio.create_task(
        app.approvals.before_tool_call(
            agent_id="spacebot",
            channel_id=channel["id"],
            thread_id=thread_id,
            turn_id=f"turn_{thread_id}",
            call_id=f"call_{thread_id}",
            tool="restart_service",
            arguments={"service": text.split()[-1]},
        )
    )
    for _ in range(200):
        waiting = [a for a in await app.approvals.inbox(app.instance.org_id) if a["thread_id"] == thread_id]
        if waiting:
            return asked, thread_id, waiting[0]
        await asyncio.sleep(0.01)
    raise AssertionError("the approval was never asked")


async def test_a_pending_approval_escalates_then_times_out_to_deny(app: Spacechat) -> None:
    clock = FakeClock()
    app.approvals.clock = clock
    asked, _, first = await ask_approval(app, "restart billing")
    inbox = await app.approvals.inbox(app.instance.org_id)
    assert inbox[0]["id"] == first["id"]
    assert [(a["tool"], a["risk"], a["age_seconds"]) for a in inbox] == [("restart_service", "high", 0)]
    clock.advance(minutes=29)
    assert await app.approvals.sweep() == {"escalated": [], "timed_out": []}
    clock.advance(minutes=1)
    assert await app.approvals.sweep() == {"escalated": [inbox[0]["id"]], "timed_out": []}
    assert await app.approvals.sweep() == {"escalated": [], "timed_out": []}, "escalated once"
    pending = (await app.approvals.inbox(app.instance.org_id))[0]
    assert pending["escalated_to"] == "role:owner" and pending["age_seconds"] == 30 * 60
    assert not asked.done(), "escalation does not decide"
    clock.advance(minutes=90)
    assert await app.approvals.sweep() == {"escalated": [], "timed_out": [inbox[0]["id"]]}
    decision = await asyncio.wait_for(asked, 5)
    assert (
        decision is not None
        and decision["decision"] == "deny"
        and "no decision within 120 minutes" in decision["reason"]
    )
    assert await app.approvals.inbox(app.instance.org_id) == []
    decided = await audit_rows(app, "approval.decided")
    assert decided[0]["outcome"] == "timed_out" and decided[0]["details"]["rule"] == "timed out after 120 minutes"
    escalated = await audit_rows(app, "approval.escalated")
    assert escalated[0]["details"]["to"] == "role:owner"
    card = await message_store.get_message(app.db, str(inbox[0]["message_id"]))
    assert card is not None and card["card_state"]["decided"]["decision"]["label"].startswith("Denied: no decision")


async def test_an_approval_escalates_to_a_named_person_who_is_mentioned(app: Spacechat) -> None:
    clock = FakeClock()
    app.approvals.clock = clock
    org = app.instance.org_id
    ada = await app.db.write(
        lambda tx: identity.create_user(
            tx, org_id=org, kind="human", name="Ada Oncall", role="admin", email="ada@example.com", actor=SYSTEM
        )
    )
    app.approvals.settings = app.approvals.settings.model_copy(update={"escalate_to": "ada@example.com"})
    asked, thread_id, approval = await ask_approval(app, "restart search")
    clock.advance(minutes=30)
    assert await app.approvals.sweep() == {"escalated": [approval["id"]], "timed_out": []}
    pending = (await app.approvals.inbox(org))[0]
    assert pending["escalated_to"] == ada["id"]
    assert (await audit_rows(app, "approval.escalated"))[0]["details"]["to"] == ada["id"]
    history = await message_store.history(app.db, thread_id, before=None, after=None, limit=10)
    line = "Approval of `restart_service` has waited 30 minutes: escalated to @ada-oncall."
    assert history.messages[-1]["text"] == line
    spacebot = app.access.channel_named("spacebot", org)
    assert spacebot is not None
    followed, _ = await chat.inbox(app.db, ada["id"], [spacebot["id"]], before=None, limit=10, unread_only=False)
    assert [(row["id"], row["mentioned"]) for row in followed] == [(thread_id, 1)], "in Ada's inbox, as a mention"

    # Someone who is no member of the organisation (a typo, a deactivated account): its admins.
    app.approvals.settings = app.approvals.settings.model_copy(update={"escalate_to": "usr_gone"})
    other, other_thread, second = await ask_approval(app, "restart ledger")
    clock.advance(minutes=30)
    assert await app.approvals.sweep() == {"escalated": [second["id"]], "timed_out": []}
    later = {a["id"]: a for a in await app.approvals.inbox(org)}
    assert later[second["id"]]["escalated_to"] == "role:admin" and later[approval["id"]]["escalated_to"] == ada["id"]
    lines = await message_store.history(app.db, other_thread, before=None, after=None, limit=10)
    assert lines.messages[-1]["text"].endswith("escalated to admins.")
    for task in (asked, other):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def clocked_incidents(app: Spacechat) -> tuple[FakeClock, Any, str, Actor]:
    """The incident service on a hand-moved clock, its organisation and an owner acting."""
    clock = FakeClock()
    app.incidents.clock = clock
    org = app.instance.org_id
    assert org is not None
    return clock, app.incidents, org, Actor("user", "u_olive")


async def test_incident_lifecycle_with_reminders_roles_timeline_and_retrospective(app: Spacechat) -> None:
    clock, incidents, org, owner = clocked_incidents(app)
    general = app.access.channel_named("general", org)
    assert general is not None
    source = (
        await app.db.write(
            lambda tx: message_store.post_message(
                tx,
                actor=Actor("user", "u_sam"),
                channel=general,
                thread_id=None,
                text="checkout returns 502 for everyone",
            )
        )
    ).message
    incident = await incidents.open(
        org_id=org, kind="manual", title="Checkout is down", severity="sev1", actor=owner, from_message=source
    )
    assert (incident["status"], incident["severity"], incident["opened_from"]) == ("triage", "sev1", source["id"])
    iid = incident["id"]
    clock.advance(minutes=14)
    assert await incidents.sweep() == [], "sev1 wants an update every 15 minutes"
    clock.advance(minutes=1)
    assert await incidents.sweep() == [iid]
    assert await incidents.sweep() == [], "one reminder per quiet spell"
    await incidents.assign_role(iid, "lead", "u_lena", owner, ip=None)
    await incidents.assign_role(iid, "communications", "u_cory", owner, ip=None)
    graph = (
        await app.db.write(
            lambda tx: message_store.post_message(
                tx,
                actor=Actor("user", "u_sam"),
                channel=general,
                thread_id=source["thread_id"],
                text="the error graph: 40% of checkout requests fail since 09:00",
            )
        )
    ).message
    await incidents.pin(iid, graph, owner, ip=None)
    with pytest.raises(Conflict):
        await incidents.pin(iid, graph, owner, ip=None)
    clock.advance(minutes=2)
    acked = await incidents.act(iid, "acknowledge", Actor("user", "u_lena"))
    assert acked["status"] == "investigating" and acked["acknowledged_at"] == "2026-03-02T09:17:00.000Z"
    await incidents.post_update(iid, "Rolling back the 09:00 deploy.", Actor("user", "u_cory"), ip=None)
    clock.advance(minutes=14)
    assert await incidents.sweep() == [], "an update restarts the interval"
    clock.advance(minutes=1)
    assert await incidents.sweep() == [iid]
    await incidents.set_severity(iid, "sev2", owner, ip=None)
    clock.advance(minutes=3)
    mitigated = await incidents.act(iid, "mitigate", Actor("user", "u_lena"), note="rollback done")
    assert mitigated["mitigated_at"] == "2026-03-02T09:35:00.000Z"
    clock.advance(minutes=30)
    assert await incidents.sweep() == [iid], "sev2: every 30 minutes"
    clock.advance(minutes=5)
    await incidents.act(iid, "resolve", Actor("user", "u_lena"))
    clock.advance(minutes=10)
    assert await incidents.sweep() == [], "no reminders once resolved"
    closed = await incidents.act(iid, "close", owner)
    assert closed["status"] == "closed" and closed["closed_at"] == "2026-03-02T10:20:00.000Z"
    timeline = await incident_store.timeline(app.db, iid)
    assert [e["kind"] for e in timeline] == [
        "opened",
        "pin",
        "reminder",
        "role",
        "role",
        "pin",
        "status",
        "update",
        "reminder",
        "severity",
        "status",
        "reminder",
        "status",
        "status",
    ]
    assert timeline[1]["message_id"] == source["id"] and "checkout returns 502" in timeline[1]["text"]
    assert timeline[5]["message_id"] == graph["id"] and "40% of checkout requests fail" in timeline[5]["text"]
    assert "(u_lena)" in timeline[8]["text"], "a reminder names the lead (here one with no account)"
    stored = await incident_store.get(app.db, iid)
    assert stored is not None
    retro = stored["retrospective"]
    assert retro.startswith("# Retrospective: incident #1: Checkout is down")
    assert "- Time to acknowledge (triage to investigating): 17 min 00 s" in retro
    assert "- Time to mitigate: 35 min 00 s" in retro and "- Time to resolve: 1 h 10 min" in retro
    assert "- Open in total: 1 h 20 min" in retro
    assert "- lead: u_lena" in retro and "- communications: u_cory" in retro
    assert "Rolling back the 09:00 deploy." in retro and "checkout returns 502 for everyone" in retro
    assert "severity sev1 -> sev2" in retro
    pins = retro.split("## Pinned messages (2)\n\n")[1].split("\n\n")[0].splitlines()
    assert pins == [
        "- 2026-03-02T09:00:00.000Z u_sam: checkout returns 502 for everyone",
        "- 2026-03-02T09:15:00.000Z u_sam: the error graph: 40% of checkout requests fail since 09:00",
    ], "the pin made after opening is in the draft with the one made at opening"
    steps = [row["action"] for row in reversed(await audit_rows(app, "incident."))]
    assert steps == [
        "incident.opened",
        "incident.update_reminder",
        "incident.role_assigned",
        "incident.role_assigned",
        "incident.message_pinned",
        "incident.acknowledged",
        "incident.update_posted",
        "incident.update_reminder",
        "incident.severity_changed",
        "incident.mitigated",
        "incident.update_reminder",
        "incident.resolved",
        "incident.closed",
    ]
    source_thread = await message_store.history(app.db, source["thread_id"], before=None, after=None, limit=10)
    assert any("opened from this" in m["text"] for m in source_thread.messages)
    # Each step went out as an `incident.*` event (what realtime delivers), in the incidents
    # channel, carrying the incident as it was after the step.
    incidents_channel = app.access.channel_named("incidents", org)
    assert incidents_channel is not None
    logged = [e for e in await event_log.read_after(app.db, 0) if e.event_type.startswith("incident.")]
    assert {e.channel_id for e in logged} == {incidents_channel["id"]}
    payloads = [orjson.loads(e.body)["payload"] for e in logged]
    assert [
        (e.event_type, p.get("change"), p["incident"]["status"]) for e, p in zip(logged, payloads, strict=True)
    ] == [
        ("incident.opened", None, "triage"),
        ("incident.updated", "reminder", "triage"),
        ("incident.updated", "role", "triage"),
        ("incident.updated", "role", "triage"),
        ("incident.updated", "pin", "triage"),
        ("incident.acknowledged", None, "investigating"),
        ("incident.updated", "update", "investigating"),
        ("incident.updated", "reminder", "investigating"),
        ("incident.updated", "severity", "investigating"),
        ("incident.updated", "status", "mitigated"),
        ("incident.updated", "reminder", "mitigated"),
        ("incident.resolved", None, "resolved"),
        ("incident.updated", "status", "closed"),
        ("incident.updated", "retrospective", "closed"),
    ]
    assert payloads[4]["detail"] == {"message_id": graph["id"]}
    assert payloads[8]["detail"] == {"from": "sev1", "to": "sev2"} and payloads[8]["incident"]["severity"] == "sev2"
    assert payloads[-1]["incident"]["retrospective"] == retro


async def test_a_reminder_mentions_the_lead_who_finds_it_in_their_inbox(app: Spacechat) -> None:
    clock, incidents, org, owner = clocked_incidents(app)
    lena = await app.db.write(
        lambda tx: identity.create_user(
            tx, org_id=org, kind="human", name="Lena Lead", role="member", email="lena@example.com", actor=SYSTEM
        )
    )
    incident = await incidents.open(org_id=org, kind="manual", title="Search is slow", severity="sev1", actor=owner)
    await incidents.assign_role(incident["id"], "lead", lena["id"], owner, ip=None)
    clock.advance(minutes=15)
    assert await incidents.sweep() == [incident["id"]]
    stored = await incident_store.get(app.db, incident["id"])
    assert stored is not None and stored["message_id"]
    card = await message_store.get_message(app.db, stored["message_id"])
    assert card is not None
    history = await message_store.history(app.db, card["thread_id"], before=None, after=None, limit=20)
    line = history.messages[-1]
    assert line["text"] == "Incident #1 needs a status update: none for 15 minutes (@lena-lead)"
    channel = app.access.channels[card["channel_id"]]
    followed, _ = await chat.inbox(app.db, lena["id"], [channel["id"]], before=None, limit=10, unread_only=False)
    assert [(row["id"], row["mentioned"]) for row in followed] == [(card["thread_id"], 1)], "a mention in her inbox"
