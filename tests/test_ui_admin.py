"""Administration in the web UI, in real Chromium: API tokens in Settings (created with a subset of
scopes and an expiry, the secret shown once, honoured and refused over HTTP, revoked), members and
their roles (what an owner and an admin may give), the audit log view, and incidents handled by
hand (acknowledged, escalated, resolved) while a member's page follows them live. Each test runs
its own `spacechat serve` (the `server` fixture of conftest.py) and its own browser contexts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from .browser import signed_in_page, wait_connected
from .support import Server, invite

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 1000}


async def audit(server: Server, action: str) -> list[dict[str, Any]]:
    async with server.client() as client:
        response = await client.get("/v1/audit", params={"action": action})
        assert response.status_code == 200, response.text
        return list(response.json()["entries"])


# --- API tokens -----------------------------------------------------------------------------------


async def test_api_token_with_some_scopes_is_shown_once_works_and_is_revoked(server: Server, browser: Browser) -> None:
    channel_id = server.channel_id("general")
    watched = await signed_in_page(browser, server, viewport=VIEWPORT)
    page = watched.page
    await page.goto(f"{server.url}/settings")
    await wait_connected(page)
    section = page.get_by_role("region", name="API tokens")
    form = section.get_by_role("form", name="New API token")
    # The scopes offered are the owner's own, none ticked.
    async with server.client() as client:
        own = (await client.get("/v1/me")).json()["scopes"]
    scopes = form.get_by_role("group", name="Scopes (at most your own)")
    # "All my scopes" (issue 13) comes first, unticked; then one box per scope of the owner's.
    await expect(scopes.get_by_role("checkbox", name="All my scopes")).not_to_be_checked()
    boxes = scopes.locator("input[type=checkbox][name=scope]")
    await expect(boxes).to_have_count(len(own))
    assert [await box.get_attribute("value") for box in await boxes.all()] == own
    await expect(form.get_by_role("checkbox", name="audit:read", exact=True)).not_to_be_checked()
    await form.get_by_label("Name").fill("ci reader")
    await form.get_by_label("Expires in (days, optional)").fill("7")
    await form.get_by_role("checkbox", name="channels:read", exact=True).check()
    await form.get_by_role("checkbox", name="messages:read", exact=True).check()
    await form.get_by_role("button", name="Create token").click()

    # The secret, once, with a warning; the token in the list with its scopes and expiry.
    shown = section.locator("div.secret[role=status]")  # the Copy button has its own status
    await expect(shown).to_contain_text("ci reader: copy the secret now; it is not shown again.")
    secret_box = section.get_by_label("The new token's secret")
    await expect(secret_box).to_have_value(re.compile(r"^sc_\S{20,}$"))
    secret = await secret_box.input_value()
    row = section.locator("li.device", has_text="ci reader")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("channels:read, messages:read")
    await expect(row).to_contain_text("expires")
    # The form is ready for the next token.
    await expect(form.get_by_label("Name")).to_have_value("")
    await expect(form.get_by_role("checkbox", name="messages:read", exact=True)).not_to_be_checked()

    async with server.client() as client:
        tokens = (await client.get("/v1/tokens")).json()["tokens"]
    made = next(t for t in tokens if t["name"] == "ci reader")
    assert made["scopes"] == ["channels:read", "messages:read"]
    expires = datetime.fromisoformat(made["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5), made["expires_at"]

    # It works for what its scopes allow, and only that.
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as as_token:
        threads = await as_token.get(f"/v1/channels/{channel_id}/threads")
        assert threads.status_code == 200, threads.text
        refused = await as_token.post(f"/v1/channels/{channel_id}/messages", json={"text": "not allowed"})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["details"]["scope"] == "messages:write", refused.text

        # Reloaded: the secret is gone for good, the token stays.
        await page.reload()
        await wait_connected(page)
        await expect(row).to_have_count(1)
        await expect(section.get_by_label("The new token's secret")).to_have_count(0)
        assert secret not in await page.content()

        # Revoked in the UI: gone from the list, refused over HTTP.
        await row.get_by_role("button", name="Revoke").click()
        await expect(row).to_have_count(0)
        await expect(section.locator("li.device", has_text="tests")).to_have_count(1)  # the others stay
        after = await as_token.get(f"/v1/channels/{channel_id}/threads")
        assert after.status_code == 401, after.text
    revoked = await audit(server, "auth.token_revoked")
    assert [e["target"]["id"] for e in revoked] == [made["id"]]
    await watched.assert_clean()


# --- members and roles ----------------------------------------------------------------------------


async def test_owner_changes_a_role_and_an_admin_cannot_give_owner(server: Server, browser: Browser) -> None:
    member = invite(server, server.token, "member", name="Mo Member")
    admin = invite(server, server.token, "admin", name="Ada Admin")
    watched = await signed_in_page(browser, server, viewport=VIEWPORT)
    page = watched.page
    await page.goto(f"{server.url}/settings")
    await wait_connected(page)
    members = page.get_by_role("region", name="Members and roles")
    mo = members.locator(f"tr[data-user-id='{member.id}']")
    picker = mo.get_by_label("Role of Mo Member")
    await expect(picker).to_have_value("member")
    change = mo.get_by_role("button", name="Change")
    await expect(change).to_be_disabled()  # nothing to change yet
    # The owner may give any role, owner included; their own row and the agents' are not editable.
    assert await picker.locator("option").all_inner_texts() == ["owner", "admin", "operator", "member", "guest"]
    await expect(members.locator(f"tr[data-user-id='{server.owner['id']}'] select")).to_have_count(0)
    agents = members.locator("tr", has=page.locator(".tag", has_text="agent"))
    await expect(agents.first).to_contain_text("Spacebot")
    await expect(agents.locator("select")).to_have_count(0)

    await picker.select_option("operator")
    await expect(change).to_be_enabled()
    await change.click()
    await expect(members.get_by_role("status")).to_have_text("Mo Member is now operator.")
    await expect(picker).to_have_value("operator")
    await expect(change).to_be_disabled()

    # The server agrees, the audit log has it, and a reload shows it.
    async with server.client() as client:
        users = (await client.get("/v1/users")).json()["users"]
    assert next(u["role"] for u in users if u["id"] == member.id) == "operator"
    changes = await audit(server, "member.role_changed")
    assert [(e["actor"]["id"], e["target"]["id"], e["details"]) for e in changes] == [
        (server.owner["id"], member.id, {"from": "member", "to": "operator"})
    ]
    await page.reload()
    await expect(members.get_by_label("Role of Mo Member")).to_have_value("operator")

    # An admin is not offered owner, and cannot touch the owner's role.
    theirs = await signed_in_page(browser, server, admin, viewport=VIEWPORT)
    await theirs.page.goto(f"{server.url}/settings")
    await wait_connected(theirs.page)
    their_members = theirs.page.get_by_role("region", name="Members and roles")
    their_picker = their_members.get_by_label("Role of Mo Member")
    await expect(their_picker).to_have_value("operator")
    assert await their_picker.locator("option").all_inner_texts() == ["admin", "operator", "member", "guest"]
    owner_row = their_members.locator(f"tr[data-user-id='{server.owner['id']}']")
    await expect(owner_row).to_contain_text("Olive Owner")
    await expect(owner_row.locator("select")).to_have_count(0)
    await expect(owner_row.locator("td").last).to_have_text("owner")
    # ... and the server refuses it to them all the same.
    async with httpx.AsyncClient(base_url=server.url, headers=admin.auth, timeout=30) as as_admin:
        refused = await as_admin.patch(f"/v1/users/{member.id}", json={"role": "owner"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "role_not_assignable", refused.text
    # An admin may give what their role allows: the operator becomes a guest.
    await their_picker.select_option("guest")
    await their_members.locator(f"tr[data-user-id='{member.id}']").get_by_role("button", name="Change").click()
    await expect(their_members.get_by_role("status")).to_have_text("Mo Member is now guest.")
    changes = await audit(server, "member.role_changed")
    assert [(e["actor"]["id"], e["details"]["to"]) for e in changes] == [
        (admin.id, "guest"),
        (server.owner["id"], "operator"),
    ]
    await watched.assert_clean()
    await theirs.assert_clean()


# --- the audit log --------------------------------------------------------------------------------


async def test_audit_log_newest_first_filtered_and_closed_to_members(server: Server, browser: Browser) -> None:
    member = invite(server, server.token, "member", name="Mo Member")
    async with server.client() as client:
        for role in ("operator", "guest", "member"):
            changed = await client.patch(f"/v1/users/{member.id}", json={"role": role})
            assert changed.status_code == 200, changed.text
    watched = await signed_in_page(browser, server, viewport=VIEWPORT)
    page = watched.page
    await page.goto(f"{server.url}/settings")
    await wait_connected(page)
    await page.get_by_role("link", name="Audit log").click()
    await expect(page).to_have_url(f"{server.url}/audit")
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    table = page.locator("table.audit")
    rows = table.locator("tbody tr")
    # Newest first: the sign-in of this very page, then the role changes, last one first.
    await expect(rows.first).to_have_attribute("data-action", "auth.login")
    await expect(rows.nth(1)).to_have_attribute("data-action", "member.role_changed")
    await expect(rows.nth(1)).to_contain_text('"to":"member"')
    every = await audit(server, "")
    shown = [await row.get_attribute("data-action") for row in await rows.all()]
    assert shown == [e["action"] for e in every], shown
    assert shown[-1] == "auth.setup"  # the oldest last

    # Filtered by an action prefix: only the member.* rows, newest first.
    await page.get_by_label("Action", exact=True).fill("member")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_text("No entries match.")).to_be_visible()
    await page.get_by_label("Action", exact=True).fill("member.")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(4)
    assert [await row.get_attribute("data-action") for row in await rows.all()] == [
        "member.role_changed",
        "member.role_changed",
        "member.role_changed",
        "member.invited",
    ]
    details = [await row.locator("td.detail").inner_text() for row in await rows.all()]
    assert details[:3] == [
        '{"from":"guest","to":"member"}',
        '{"from":"operator","to":"guest"}',
        '{"from":"member","to":"operator"}',
    ], details
    await expect(rows.nth(0).locator("td").nth(1)).to_have_text("Olive Owner")
    await expect(rows.nth(0).locator("td").nth(2)).to_contain_text(member.id)

    # A member has no audit log: no link, and the address says why, with no rows.
    theirs = await signed_in_page(browser, server, member, viewport=VIEWPORT)
    await theirs.page.goto(f"{server.url}/settings")
    await wait_connected(theirs.page)
    await expect(theirs.page.get_by_role("heading", name="Settings")).to_be_visible()
    await expect(theirs.page.get_by_role("link", name="Audit log")).to_have_count(0)
    await theirs.page.goto(f"{server.url}/audit")
    await wait_connected(theirs.page)
    await expect(theirs.page.get_by_text("You need the audit:read permission to see the audit log.")).to_be_visible()
    await expect(theirs.page.locator("table.audit")).to_have_count(0)
    async with httpx.AsyncClient(base_url=server.url, headers=member.auth, timeout=30) as as_member:
        refused = await as_member.get("/v1/audit")
    assert refused.status_code == 403 and refused.json()["error"]["details"]["scope"] == "audit:read"
    await watched.assert_clean()
    await theirs.assert_clean()


# --- incidents by hand ----------------------------------------------------------------------------


async def test_incident_acknowledged_escalated_and_resolved_live(server: Server, browser: Browser) -> None:
    operator = invite(server, server.token, "operator", name="Opal Operator")
    member = invite(server, server.token, "member", name="Mo Member")
    watched = await signed_in_page(browser, server, operator, viewport=VIEWPORT)
    page = watched.page
    other = await signed_in_page(browser, server, member, viewport=VIEWPORT)
    their = other.page
    for each in (page, their):
        await each.goto(f"{server.url}/incidents")
        await wait_connected(each)
        await expect(each.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
        await expect(each.get_by_text("No incidents here.")).to_be_visible()
        await expect(each.locator("a.nav-link[data-open-incidents]")).to_have_attribute("data-open-incidents", "0")

    # Opened by a person over the API: both pages show it at once.
    async with server.client() as client:
        opened = await client.post(
            "/v1/incidents", json={"title": "Disk full on runner 3", "severity": "critical", "details": "ENOSPC"}
        )
    assert opened.status_code == 201, opened.text
    incident_id = opened.json()["incident"]["id"]
    mine = page.get_by_role("list", name="Incidents", exact=True).locator(
        f"li.incident[data-incident-id='{incident_id}']"
    )
    theirs = their.get_by_role("list", name="Incidents", exact=True).locator(
        f"li.incident[data-incident-id='{incident_id}']"
    )
    for row, each in ((mine, page), (theirs, their)):
        await expect(row).to_have_attribute("data-status", "triage")
        await expect(row).to_contain_text("#1 Disk full on runner 3")
        await expect(row.locator(".severity")).to_have_text("sev1")
        await expect(row.locator(".error-message")).to_have_text("ENOSPC")
        await expect(each.locator("a.nav-link[data-open-incidents]")).to_have_attribute("data-open-incidents", "1")
    # The member may read it, not act on it.
    await expect(theirs.get_by_role("link", name="Open its thread")).to_be_visible()
    await expect(theirs.get_by_role("button")).to_have_text(["Details"])
    await expect(theirs.get_by_label("Escalate to")).to_have_count(0)

    # Acknowledge.
    await mine.get_by_role("button", name="Acknowledge").click()
    await expect(mine.get_by_role("status")).to_have_text("Acknowledged.")
    await expect(mine).to_have_attribute("data-status", "investigating")
    await expect(mine.get_by_role("button", name="Acknowledge")).to_have_count(0)
    await expect(theirs).to_have_attribute("data-status", "investigating")
    await expect(theirs.locator(".incident-status")).to_have_text("investigating")
    await expect(theirs.locator(".meta")).to_contain_text("acknowledged by Opal Operator")

    # Escalate to the admins.
    escalate = mine.get_by_role("button", name="Escalate")
    await expect(escalate).to_be_disabled()  # until someone is chosen
    await mine.get_by_label("Escalate to").select_option(label="Admins")
    await escalate.click()
    await expect(mine.get_by_role("status")).to_have_text("Escalated.")
    await expect(theirs.locator(".meta")).to_contain_text("escalated to admins")
    await expect(theirs).to_have_attribute("data-status", "investigating")

    # Resolve, with a note asked for in a dialog.
    await mine.get_by_role("button", name="Resolve").click()
    dialog = page.get_by_role("dialog", name="Resolve incident #1?")
    await dialog.get_by_label("Note (what fixed it)").fill("cleared the build cache")
    await dialog.get_by_role("button", name="Resolve").click()
    await expect(dialog).to_have_count(0)
    await expect(mine).to_have_attribute("data-status", "resolved")
    await expect(mine.get_by_role("button")).to_have_text(["Details", "Close"])
    await expect(theirs).to_have_attribute("data-status", "resolved")
    await expect(theirs.locator(".meta")).to_contain_text("resolved by Opal Operator")
    for each in (page, their):
        await expect(each.locator("a.nav-link[data-open-incidents]")).to_have_attribute("data-open-incidents", "0")

    steps = await audit(server, "incident.")
    assert [(e["action"], e["actor"]["id"], e["target"]["id"]) for e in steps] == [
        ("incident.resolved", operator.id, incident_id),
        ("incident.escalated", operator.id, incident_id),
        ("incident.acknowledged", operator.id, incident_id),
        ("incident.opened", server.owner["id"], incident_id),
    ]
    assert steps[0]["details"]["note"] == "cleared the build cache"
    assert steps[1]["details"]["to"] == "role:admin"
    async with server.client() as client:
        final = (await client.get(f"/v1/incidents/{incident_id}")).json()["incident"]
    assert (final["status"], final["escalated_to"], final["acknowledged_by"], final["resolved_by"]) == (
        "resolved",
        "role:admin",
        operator.id,
        operator.id,
    )
    await watched.assert_clean()
    await other.assert_clean()
