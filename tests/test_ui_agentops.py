"""Agent operations in the web UI, in real Chromium: Stop on a streaming reply, the thread's
timeline with its scrubber, opening an incident from a message and taking it to closed with
roles, an update and the retrospective, and the pending-approvals inbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from .browser import open_thread, signed_in_page, wait_connected
from .support import Server, toml_config, wait_for_message

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 1000}


async def test_stop_a_streaming_reply_from_its_row(tmp_path: Path, browser: Browser) -> None:
    server = Server(
        tmp_path / "data", toml_config(providers__scripted={"kind": "scripted", "chars_per_second": 15})
    ).start()
    try:
        _, thread_id = await open_thread(server, "spacebot", "hello there")
        watched = await signed_in_page(browser, server, viewport=VIEWPORT)
        page = watched.page
        await page.goto(f"{server.url}/t/{thread_id}")
        await wait_connected(page)
        reply = page.locator("article.msg[data-author-kind='agent']")
        await expect(reply).to_have_attribute("data-state", "streaming")
        stop = reply.get_by_role("button", name="Stop")
        await stop.click()
        await expect(reply).to_have_attribute("data-state", "completed")
        await expect(reply.get_by_role("button", name="Stop")).to_have_count(0)
        with server.sync_client() as client:
            history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
        stopped = next(m for m in history if m["author"]["kind"] == "agent")
        assert stopped["metadata"]["stop_reason"] == "stopped" and 0 < len(stopped["text"]) < 150
        await expect(reply.locator(".body")).to_contain_text("You said")
        await watched.assert_clean()
    finally:
        server.stop()


async def test_timeline_scrubber_shows_the_thread_at_each_step(server: Server, browser: Browser) -> None:
    _, thread_id = await open_thread(server, "spacebot", "what time is it?")
    await asyncio.to_thread(
        wait_for_message, server, thread_id, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed"
    )
    watched = await signed_in_page(browser, server, viewport=VIEWPORT)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(page)
    await page.get_by_role("link", name="Timeline").click()
    await expect(page.get_by_role("heading", name="Timeline", level=1)).to_be_visible()
    steps = page.get_by_role("region", name="Steps").locator("li.timeline-step")
    await expect(steps).to_have_count(6)
    kinds = [await s.get_attribute("data-kind") for s in await steps.all()]
    assert kinds == ["message", "turn_started", "model_call", "tool_call", "model_call", "turn_completed"]
    snapshot = page.get_by_role("region", name="The thread at step 6")
    await expect(snapshot.locator(".snapshot-row")).to_have_count(2)
    await expect(snapshot.locator(".snapshot-row").nth(1)).to_have_attribute("data-state", "completed")
    scrubber = page.get_by_label("Step", exact=True)
    await scrubber.focus()
    await page.keyboard.press("Home")
    at_first = page.get_by_role("region", name="The thread at step 1")
    await expect(at_first.locator(".snapshot-row")).to_have_count(1)
    await expect(at_first).to_contain_text("what time is it?")
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowRight")
    at_third = page.get_by_role("region", name="The thread at step 3")
    await expect(at_third.locator(".snapshot-row").nth(1)).to_have_attribute("data-state", "writing")
    await expect(page.locator("li.timeline-step[aria-current='step']")).to_have_attribute("data-kind", "model_call")
    await page.locator("li.timeline-step[data-kind='tool_call'] button").click()
    await expect(page.locator("li.timeline-step[aria-current='step']")).to_contain_text("current_time")
    # The scripted model has no price: unpriced, never $0, here and on the dashboard.
    await expect(page.locator("li.timeline-step[data-kind='model_call']").first).to_contain_text("unpriced")
    await page.get_by_role("link", name="Dashboard").click()
    total = page.locator(".usage-total")
    await expect(total).to_contain_text("unpriced · 2 requests · 2 unpriced")
    await expect(total).not_to_contain_text("$0")
    await expect(page.locator("table.data-table td.cost")).to_have_text(["unpriced"])
    await watched.assert_clean()


async def test_open_an_incident_from_a_message_and_close_it(server: Server, browser: Browser) -> None:
    _, thread_id = await open_thread(server, "general", "checkout returns 502 for everyone")
    watched = await signed_in_page(browser, server, viewport=VIEWPORT)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(page)
    message = page.locator("article.msg").first
    # The message's actions show on hover (or focus), in its toolbar, as a person finds them.
    await message.hover()
    await message.get_by_role("button", name="Open incident from this message").click()
    dialog = page.get_by_role("dialog", name="Open an incident from this message")
    await dialog.get_by_label("Incident title").fill("Checkout is down")
    await dialog.get_by_role("button", name="Open incident").click()
    await expect(page.get_by_role("heading", name="Incidents", level=1)).to_be_visible()
    row = page.locator("li.incident").first
    await expect(row).to_have_attribute("data-status", "triage")
    detail = row.locator(".incident-detail")
    await expect(detail.locator(".incident-timeline li[data-kind='pin']")).to_contain_text("checkout returns 502")
    await detail.get_by_label("Role").select_option("lead")
    await detail.get_by_label("Person").select_option(label="Olive Owner")
    await detail.get_by_role("button", name="Assign").click()
    await expect(detail.locator("dd[data-role='lead']")).to_have_text("Olive Owner")
    await detail.get_by_label("Status update").fill("Rolling back the deploy.")
    await detail.get_by_role("button", name="Post update").click()
    await expect(detail.locator(".incident-timeline li[data-kind='update']")).to_contain_text(
        "Rolling back the deploy."
    )
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row).to_have_attribute("data-status", "investigating")
    await row.get_by_role("button", name="Mitigated").click()
    await expect(row).to_have_attribute("data-status", "mitigated")
    await row.get_by_role("button", name="Resolve").click()
    note = page.get_by_role("dialog", name="Resolve incident #1?")
    await note.get_by_label("Note (what fixed it)").fill("rolled back")
    await note.get_by_role("button", name="Resolve").click()
    await expect(row).to_have_attribute("data-status", "resolved")
    await row.get_by_role("button", name="Close").click()
    await expect(row).to_have_attribute("data-status", "closed")
    retro = row.locator("details.retrospective")
    await expect(retro).to_contain_text("Retrospective: incident #1: Checkout is down")
    await expect(retro).to_contain_text("lead: Olive Owner")
    await expect(retro).to_contain_text("Rolling back the deploy.")
    await page.goto(f"{server.url}/t/{thread_id}")
    await expect(page.locator("article.msg").filter(has_text="Incident #1 opened from this")).to_have_count(1)
    await watched.assert_clean()


async def test_open_an_incident_from_the_incidents_page(server: Server, browser: Browser) -> None:
    watched = await signed_in_page(browser, server, viewport=VIEWPORT)
    page = watched.page
    await page.goto(f"{server.url}/incidents")
    await wait_connected(page)
    await expect(page.get_by_text("No incidents here.")).to_be_visible()
    form = page.locator("form.open-incident-form")
    await expect(form.get_by_role("heading", name="Open an incident")).to_be_visible()
    # A title of spaces only is refused by the server: the form says why and nothing is opened.
    await form.get_by_label("Title").fill("   ")
    await form.get_by_role("button", name="Open incident").click()
    await expect(form.get_by_role("alert")).to_contain_text("title")
    await expect(page.locator("li.incident")).to_have_count(0)
    await form.get_by_label("Title").fill("Search answers slowly")
    await form.get_by_label("Severity").select_option("sev2")
    await form.get_by_label("What is known").fill("p95 of /v1/search is 8 s since 14:00")
    await form.get_by_role("button", name="Open incident").click()
    await expect(form.get_by_role("status")).to_have_text("Incident #1 opened.")
    await expect(form.get_by_label("Title")).to_have_value("")
    row = page.locator("li.incident")
    await expect(row).to_have_count(1)
    await expect(row).to_have_attribute("data-status", "triage")
    await expect(row.locator(".incident-head")).to_contain_text("#1 Search answers slowly")
    await expect(row.locator(".severity")).to_have_text("sev2")
    await expect(row.locator(".error-message")).to_have_text("p95 of /v1/search is 8 s since 14:00")
    with server.sync_client() as client:
        listed = client.get("/v1/incidents").json()["incidents"]
    assert [(i["number"], i["title"], i["severity"], i["kind"], i["status"]) for i in listed] == [
        (1, "Search answers slowly", "sev2", "manual", "triage")
    ]
    await row.get_by_role("button", name="Details").click()
    await expect(row.locator(".incident-timeline li[data-kind='opened']")).to_contain_text("as sev2")
    await watched.assert_clean()


async def test_the_approvals_inbox_decides(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", toml_config(top='hook_plugins = ["tool_approval"]')).start()
    try:
        with server.sync_client() as client:
            policy = {"tool": "restart_service", "policy": "always", "risk": "critical"}
            assert client.post("/v1/approvals/policies", json=policy).status_code == 200
        _, thread_id = await open_thread(server, "spacebot", "restart billing")
        watched = await signed_in_page(browser, server, viewport=VIEWPORT)
        page = watched.page
        await page.goto(f"{server.url}/approvals")
        await wait_connected(page)
        inbox = page.get_by_role("list", name="Pending approvals, oldest first")
        row = inbox.locator("li.approval")
        await expect(row).to_have_attribute("data-risk", "critical")
        await expect(row).to_contain_text("wants to run restart_service")
        await row.get_by_role("button", name="Approve for this thread").click()
        await expect(page.get_by_text("No tool call is waiting for a decision.")).to_be_visible()
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            rules = client.get("/v1/approvals/rules").json()["rules"]
        assert [(r["thread_id"], r["decision"]) for r in rules] == [(thread_id, "allow")]
        await watched.assert_clean()
    finally:
        server.stop()
