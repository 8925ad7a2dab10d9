"""What depends on time, with a clock moved by hand: a pending approval escalates, then times out
to a denial; an incident goes through its whole life with update reminders per severity, roles,
its timeline and the retrospective drafted from it. The services run in-process on a real SQLite
file (the composition root with no agent host), so the test sets their clocks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.app import Spacechat
from spacechat_plugin.config import settings_from_mapping
from spacechat_plugin.events import Actor
from spacechat_plugin.store import audit
from spacechat_plugin.store import incidents as incident_store
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


async def test_a_pending_approval_escalates_then_times_out_to_deny(app: Spacechat) -> None:
    clock = FakeClock()
    app.approvals.clock = clock
    channel = app.access.channel_named("spacebot", app.instance.org_id)
    assert channel is not None
    posted = await app.db.write(
        lambda tx: message_store.post_message(
            tx, actor=Actor("user", "u_sam"), channel=channel, thread_id=None, text="restart billing"
        )
    )
    asked = asyncio.create_task(
        app.approvals.before_tool_call(
            agent_id="spacebot",
            channel_id=channel["id"],
            thread_id=posted.thread["id"],
            turn_id="turn_1",
            call_id="call_1",
            tool="restart_service",
            arguments={"service": "billing"},
        )
    )
    inbox = []
    for _ in range(100):
        inbox = await app.approvals.inbox(app.instance.org_id)
        if inbox:
            break
        await asyncio.sleep(0.01)
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


async def test_incident_lifecycle_with_reminders_roles_timeline_and_retrospective(app: Spacechat) -> None:
    clock = FakeClock()
    incidents = app.incidents
    incidents.clock = clock
    org = app.instance.org_id
    owner = Actor("user", "u_olive")
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
    assert "<@u_lena>" in timeline[7]["text"], "a reminder names the lead"
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
    steps = [row["action"] for row in reversed(await audit_rows(app, "incident."))]
    assert steps == [
        "incident.opened",
        "incident.update_reminder",
        "incident.role_assigned",
        "incident.role_assigned",
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
