"""Cards and tasks in the web UI, in real Chromium (issue 5): tool approval end to end with the
embedded host (approve, deny, and a restart while the approval waits), every block type rendered
and operated by keyboard (a confirmed button, selects, a form with a server-side error shown at
its field, a poll whose tallies move live in a second browser), and the task board (create,
approve, move, an illegal move naming the allowed ones). Each test runs its own `spacechat serve`."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from .browser import (
    TIMEOUT_MS,
    events_of,
    free_port,
    log_seq,
    post,
    signed_in_page,
    wait_connected,
    wait_until_async,
)
from .support import Server, invite, toml_config

pytestmark = pytest.mark.browser

TOOL_APPROVAL = toml_config(top='hook_plugins = ["tool_approval"]', hooks__tool_approval={"tools": ["restart_service"]})
# A 1x1 red PNG, for an image block backed by an attachment.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


# --- tool approval, end to end ---------------------------------------------------------------------


async def ask_for_a_restart(page: Page, server: Server, text: str) -> None:
    """Post in #spacebot from the UI and open the thread."""
    await page.goto(f"{server.url}/c/{server.channel_id('spacebot')}")
    await wait_connected(page)
    box = page.get_by_label("Start a new thread in #spacebot")
    await box.fill(text)
    await box.press("Enter")
    # A new thread in an agent's channel opens by itself (issue 13).
    await expect(page.get_by_role("heading", name=text)).to_be_visible()


def decided(text: str) -> re.Pattern[str]:
    """A decided block's line: who decided, and when ("✓ Approved by Ann at 14:06", issue 13)."""
    return re.compile(rf"^✓ {re.escape(text)} (at \d\d:\d\d( [AP]M)?|on .+)$")


def approval_card(page: Page) -> Any:
    return page.locator("article.msg", has=page.locator(".block-tool"))


def replies(page: Page) -> Any:
    """The agent's replies (not its cards)."""
    return page.locator("article.msg[data-author-kind=agent]:not(:has(.blocks))")


async def test_tool_approval_waits_then_approve_runs_the_tool(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", TOOL_APPROVAL).start()
    try:
        watched = await signed_in_page(browser, server)
        page = watched.page
        await ask_for_a_restart(page, server, "please restart billing")

        card = approval_card(page)
        tool = card.locator(".block-tool")
        await expect(tool).to_have_attribute("data-outcome", "running")
        await expect(tool).to_contain_text("restart_service")
        await expect(tool).to_contain_text('{"service": "billing"}')
        await expect(card.locator(".block-section")).to_contain_text("wants to run")
        # The reply's turn is alive and waits for a person.
        reply = replies(page)
        await expect(reply).to_have_count(1)
        await expect(reply.locator("[data-chip=waiting]")).to_be_visible()
        await expect(reply.locator("[data-waiting]")).to_contain_text("Waiting")
        await expect(page.locator(".activity")).to_have_attribute("data-activity", "waiting")

        approve = card.get_by_role("button", name="Approve", exact=True)
        await expect(approve).to_be_enabled()
        await approve.focus()
        await page.keyboard.press("Enter")
        await expect(reply).to_have_attribute("data-state", "completed", timeout=TIMEOUT_MS)
        await expect(reply.locator(".body")).to_contain_text("restart of billing requested")
        await expect(card.locator(".decided")).to_have_text(decided("Approved by Olive Owner"))
        # Settled: the decision takes the buttons' place (issue 13).
        await expect(card.get_by_role("button", name="Approve")).to_have_count(0)
        await expect(card.get_by_role("button", name="Deny")).to_have_count(0)
        await expect(page.locator(".activity")).to_have_attribute("data-activity", "idle")
        await watched.assert_clean()
    finally:
        server.stop()


async def test_tool_approval_deny_skips_the_tool(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", TOOL_APPROVAL).start()
    try:
        member = invite(server, server.token, "member")
        watched = await signed_in_page(browser, server)
        page = watched.page
        await ask_for_a_restart(page, server, "restart payments")
        card = approval_card(page)
        await expect(card.get_by_role("button", name="Deny", exact=True)).to_be_enabled()

        # A member sees the card but may not decide: the buttons say why.
        other = await signed_in_page(browser, server, member)
        thread_url = page.url
        await other.page.goto(thread_url)
        await wait_connected(other.page)
        theirs = approval_card(other.page)
        await expect(theirs.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
        await expect(theirs.locator(".needs").first).to_have_text("Needs the tasks:approve permission.")

        await card.get_by_role("button", name="Deny", exact=True).click()
        reply = replies(page)
        await expect(reply).to_have_attribute("data-state", "completed", timeout=TIMEOUT_MS)
        await expect(reply.locator(".body")).to_contain_text("Tool denied")
        await expect(reply.locator(".body")).not_to_contain_text("restart of payments requested")
        await expect(card.locator(".decided")).to_have_text(decided("Denied by Olive Owner"))
        # The member's page follows the decision live.
        await expect(theirs.locator(".decided")).to_have_text(decided("Denied by Olive Owner"))
        await watched.assert_clean()
        await other.assert_clean()
    finally:
        server.stop()


async def test_a_waiting_approval_survives_a_restart_and_still_works(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", TOOL_APPROVAL, port=free_port()).start()
    try:
        watched = await signed_in_page(browser, server)
        page = watched.page
        await ask_for_a_restart(page, server, "restart search")
        card = approval_card(page)
        await expect(card.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
        await expect(replies(page).locator("[data-chip=waiting]")).to_be_visible()
        await page.evaluate("window.__sameDocument = true")

        await asyncio.to_thread(server.stop)
        await page.wait_for_selector(
            "html[data-connection=reconnecting], html[data-connection=offline]", state="attached"
        )
        await asyncio.to_thread(server.start)
        await wait_connected(page)
        # The turn that asked did not survive; its reply says so, and the card still waits.
        first = replies(page).first
        await expect(first).to_have_attribute("data-state", "failed")
        await expect(first.locator("[data-chip=interrupted]")).to_be_visible()
        approve = card.get_by_role("button", name="Approve", exact=True)
        await expect(approve).to_be_enabled()
        await expect(card.locator(".decided")).to_have_count(0)

        await approve.click()
        await expect(card.locator(".decided")).to_have_text(decided("Approved by Olive Owner"))
        resumed = page.locator("article.msg[data-author-kind=agent][data-state=completed]:not(:has(.blocks))")
        await expect(resumed.locator(".body")).to_contain_text("restart of search requested", timeout=TIMEOUT_MS)
        assert await page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        await watched.assert_clean()
    finally:
        server.stop()


# --- every block type, by keyboard ------------------------------------------------------------------


def every_block(attachment_url: str, task_id: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": "**Deploy api v2.3?** It carries 3 migrations."},
        {"type": "fields", "fields": [{"label": "Service", "value": "api"}, {"label": "Version", "value": "**v2.3**"}]},
        {"type": "context", "elements": ["Requested by *deploy-bot*", "2025-06-30 09:12 UTC"]},
        {"type": "divider"},
        {"type": "image", "url": attachment_url, "alt_text": "a tiny red square", "title": "Our square"},
        {"type": "image", "url": "https://grafana.example.com/render/latency.png", "alt_text": "p99 latency, flat"},
        {"type": "status", "label": "CI", "state": "error", "detail": "3 tests **failed** on `main`"},
        {
            "type": "tool_run",
            "tool": "shell",
            "arguments_summary": "kubectl rollout status deploy/api",
            "duration_ms": 8450,
            "outcome": "succeeded",
            "detail": "deployment rolled out",
        },
        {"type": "task", "task_id": task_id},
        {
            "type": "actions",
            "block_id": "deploy",
            "elements": [
                {"type": "button", "action_id": "ship", "label": "Ship it", "style": "primary", "value": "api@v2.3"},
                {
                    "type": "button",
                    "action_id": "cancel",
                    "label": "Cancel release",
                    "style": "danger",
                    "value": "api@v2.3",
                    "confirm": {
                        "title": "Cancel the release?",
                        "text": "It will be **cancelled**.",
                        "confirm_label": "Yes, cancel",
                    },
                },
                {"type": "button", "action_id": "page", "label": "Page SRE", "scope": "ops:restart"},
                {
                    "type": "select",
                    "action_id": "env",
                    "placeholder": "Environment",
                    "options": [
                        {"label": "Staging", "value": "staging"},
                        {"label": "Production", "value": "production"},
                    ],
                },
                {
                    "type": "select",
                    "action_id": "notify",
                    "placeholder": "Notify",
                    "multiple": True,
                    "min": 1,
                    "max": 2,
                    "options": [
                        {"label": "SRE", "value": "sre"},
                        {"label": "Support", "value": "support"},
                        {"label": "Sales", "value": "sales"},
                    ],
                },
            ],
        },
        {
            "type": "form",
            "block_id": "incident",
            "action_id": "file_incident",
            "submit_label": "File incident",
            "fields": [
                {"type": "text", "name": "title", "label": "Title", "required": True, "max": 80, "pattern": "[A-Z].*"},
                {"type": "textarea", "name": "summary", "label": "What happened"},
                {"type": "number", "name": "severity", "label": "Severity", "min": 1, "max": 4, "default": 3},
                {
                    "type": "select",
                    "name": "team",
                    "label": "Team",
                    "options": [{"label": "SRE", "value": "sre"}, {"label": "Payments", "value": "payments"}],
                },
                {
                    "type": "multiselect",
                    "name": "regions",
                    "label": "Regions",
                    "max": 2,
                    "options": [
                        {"label": "EU", "value": "eu"},
                        {"label": "US", "value": "us"},
                        {"label": "APAC", "value": "apac"},
                    ],
                },
                {"type": "checkbox", "name": "customers", "label": "Customers are affected"},
                {"type": "date", "name": "due", "label": "Due", "min": "2025-01-01"},
            ],
        },
        {
            "type": "poll",
            "block_id": "lunch",
            "question": "Lunch on **Friday**?",
            "options": [
                {"label": "Pizza", "value": "pizza"},
                {"label": "Sushi", "value": "sushi"},
                {"label": "Salad", "value": "salad"},
            ],
        },
    ]


async def interaction(server: Server, after: int, action_id: str) -> dict[str, Any]:
    """The one interaction.submitted with this action after `after` (waits for it)."""

    async def found() -> Any:
        events = await events_of(server, after, "interaction.submitted")
        hits = [e["payload"]["interaction"] for e in events if e["payload"]["interaction"]["action_id"] == action_id]
        return hits

    hits = await wait_until_async(found)
    assert len(hits) == 1, hits
    return dict(hits[0])


async def test_every_block_type_renders_and_works_by_keyboard(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", toml_config()).start()
    try:
        member = invite(server, server.token, "member", name="Mo Member")
        general = server.channel_id("general")
        async with server.client() as client:
            uploaded = await client.post(
                "/v1/uploads", params={"filename": "square.png"}, content=PNG, headers={"Content-Type": "image/png"}
            )
            assert uploaded.status_code == 201, uploaded.text
            attachment_url = uploaded.json()["attachment"]["url"]
        task = (await post(server, "/v1/tasks", {"title": "Rotate the keys", "status": "pending_approval"}))["task"]
        posted = await post(
            server,
            f"/v1/channels/{general}/messages",
            {"text": "Release checklist", "blocks": every_block(attachment_url, task["id"])},
        )
        thread_url = f"{server.url}/t/{posted['thread']['id']}"

        watched = await signed_in_page(browser, server, viewport={"width": 1280, "height": 2000})
        page = watched.page
        await page.goto(thread_url)
        await wait_connected(page)
        card = page.locator("article.msg .blocks")
        await expect(card).to_have_attribute("data-blocks", "12")

        # What shows things.
        await expect(card.locator(".block-section strong")).to_have_text("Deploy api v2.3?")
        await expect(card.locator(".block-fields dt")).to_have_text(["Service", "Version"])
        await expect(card.locator(".block-fields dd strong")).to_have_text("v2.3")
        await expect(card.locator(".block-context em")).to_have_text("deploy-bot")
        await expect(card.locator("hr.block-divider")).to_have_count(1)
        image = card.get_by_role("img", name="a tiny red square")
        await expect(image).to_have_attribute("src", attachment_url)
        assert await image.evaluate("(img) => img.complete && img.naturalWidth") == 1
        # Another origin's picture would break the CSP: it is a link.
        await expect(card.locator(".block-image.external a")).to_have_attribute(
            "href", "https://grafana.example.com/render/latency.png"
        )
        status = card.locator(".block-status")
        await expect(status).to_have_attribute("data-state", "error")
        await expect(status).to_contain_text("CI")
        await expect(status.locator("strong")).to_have_text("failed")
        tool = card.locator(".block-tool")
        await expect(tool).to_have_attribute("data-outcome", "succeeded")
        await expect(tool).to_contain_text("kubectl rollout status deploy/api")
        await expect(tool).to_contain_text("8.5 s")
        task_block = card.locator(".block-task")
        await expect(task_block).to_contain_text(f"#{task['number']} Rotate the keys")
        await expect(task_block.locator("[data-task-status]")).to_have_text("Pending approval")

        # A member's view, for the live parts.
        other = await signed_in_page(browser, server, member, viewport={"width": 1280, "height": 2000})
        await other.page.goto(thread_url)
        await wait_connected(other.page)
        their_card = other.page.locator("article.msg .blocks")
        await expect(their_card.get_by_role("button", name="Page SRE")).to_be_disabled()
        await expect(card.get_by_role("button", name="Page SRE")).to_be_enabled()

        # A button with a confirmation: Escape cancels (nothing sent), Enter confirms.
        seq = await log_seq(server)
        cancel = card.get_by_role("button", name="Cancel release")
        await cancel.focus()
        await page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Cancel the release?")
        await expect(dialog).to_be_visible()
        await expect(dialog.locator("strong")).to_have_text("cancelled")
        await page.keyboard.press("Escape")
        await expect(dialog).to_have_count(0)
        await expect(cancel).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(dialog).to_be_visible()
        await expect(dialog.get_by_role("button", name="Yes, cancel")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(card.locator(".block-actions .feedback")).to_have_text("Cancel release: sent.")
        clicked = await interaction(server, seq, "cancel")
        assert clicked["kind"] == "button" and clicked["values"] == "api@v2.3"

        # A single select, by keyboard; then a multiple one.
        environment = card.get_by_label("Environment", exact=True)
        await environment.focus()
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("ArrowDown")
        await expect(environment).to_have_value("production")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(card.locator(".block-actions .feedback")).to_have_text("Environment: Production, sent.")
        chosen = await interaction(server, seq, "env")
        assert chosen["values"] == ["production"]
        notify = card.get_by_role("group", name="Notify")
        await notify.get_by_label("SRE").focus()
        await page.keyboard.press("Space")
        await notify.get_by_label("Sales").focus()
        await page.keyboard.press("Space")
        await notify.get_by_label("Sales").press("Tab")
        await page.keyboard.press("Enter")
        await expect(card.locator(".block-actions .feedback")).to_have_text("Notify: SRE, Sales, sent.")
        assert (await interaction(server, seq, "notify"))["values"] == ["sre", "sales"]

        # A form: the server refuses a title that does not match its pattern, at the field.
        form = card.locator("form.block-form")
        await expect(form.get_by_label("Severity")).to_have_value("3")
        await expect(form.locator("[data-field=title] small")).to_have_text(
            "Required · at most 80 characters · format: [A-Z].*"
        )
        await form.get_by_label("Title").fill("checkout errors")
        await form.get_by_label("What happened").fill("500s on /pay")
        await form.get_by_label("Severity").fill("2")
        await form.get_by_label("Team").select_option("payments")
        await form.get_by_label("EU").check()
        await form.get_by_label("Customers are affected").focus()
        await page.keyboard.press("Space")
        await form.get_by_label("Due").fill("2025-07-01")
        await form.get_by_role("button", name="File incident").focus()
        await page.keyboard.press("Enter")
        title_error = form.locator("[data-field=title] .field-error")
        await expect(title_error).to_contain_text("pattern")
        await expect(form.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
        await expect(form.get_by_label("Title")).to_be_focused()
        await expect(form.locator(".feedback.error")).to_be_visible()
        await page.keyboard.press("Control+A")
        await page.keyboard.type("Checkout errors")
        await expect(title_error).to_have_count(0)
        await form.get_by_role("button", name="File incident").press("Enter")
        await expect(form.locator(".feedback")).to_have_text("Submitted.")
        filed = await interaction(server, seq, "file_incident")
        assert filed["values"] == {
            "title": "Checkout errors",
            "summary": "500s on /pay",
            "severity": 2,
            "team": "payments",
            "regions": ["eu"],
            "customers": True,
            "due": "2025-07-01",
        }

        # A poll by keyboard: the tallies move in the other browser, live, and back.
        poll = card.locator("form.block-poll")
        their_poll = their_card.locator("form.block-poll")
        await expect(poll.get_by_role("radiogroup", name="Lunch on Friday?")).to_be_visible()
        await poll.get_by_label("Pizza").focus()
        await page.keyboard.press("ArrowDown")
        await expect(poll.get_by_label("Sushi")).to_be_checked()
        await page.keyboard.press("Tab")
        await expect(poll.get_by_role("button", name="Vote")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(poll.locator(".poll-option.mine")).to_have_attribute("data-value", "sushi")
        await expect(poll.locator("[data-value=sushi] .poll-tally")).to_have_text("1 vote · 100%")
        await expect(their_poll.locator("[data-value=sushi]")).to_have_attribute("data-count", "1")
        await their_poll.get_by_label("Pizza").check()
        await their_poll.get_by_role("button", name="Vote").click()
        await expect(their_poll.locator(".poll-option.mine")).to_have_attribute("data-value", "pizza")
        await expect(poll.locator("[data-value=pizza]")).to_have_attribute("data-count", "1")
        await expect(poll.locator("[data-value=pizza]")).to_have_attribute("title", "Mo Member")
        # My vote can change until the poll closes.
        await poll.get_by_label("Pizza").focus()
        await page.keyboard.press("Space")
        await poll.get_by_role("button", name="Change vote").press("Enter")
        await expect(poll.locator("[data-value=pizza]")).to_have_attribute("data-count", "2")
        await expect(their_poll.locator("[data-value=sushi]")).to_have_attribute("data-count", "0")
        await expect(their_poll.locator("[data-value=pizza] .poll-tally")).to_have_text("2 votes · 100%")

        # The task card follows the task: approved on the board (by the owner), it shows live in
        # the member's view of the card.
        await page.get_by_role("link", name="Tasks").click()
        board_card = page.locator(f"li.task-card[data-task-id={task['id']}]")
        await expect(board_card).to_have_attribute("data-status", "pending_approval")
        await board_card.get_by_role("button", name="Approve").click()
        await expect(page.locator(f"[data-column=ready] li[data-task-id={task['id']}]")).to_be_visible()
        their_task = their_card.locator(".block-task")
        await expect(their_task).to_have_attribute("data-status", "ready")
        await expect(their_task.locator("[data-task-status]")).to_have_text("Ready")
        await page.go_back()
        await expect(page.locator("article.msg .block-task [data-task-status]")).to_have_text("Ready")
        await watched.assert_clean()
        await other.assert_clean()
    finally:
        server.stop()


# --- the task board ---------------------------------------------------------------------------------


async def test_task_board_create_approve_move_and_an_illegal_move(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", toml_config()).start()
    try:
        operator = invite(server, server.token, "operator", name="Opal Operator")
        member = invite(server, server.token, "member", name="Mo Member")
        watched = await signed_in_page(browser, server, operator, viewport={"width": 1600, "height": 1000})
        page = watched.page
        await page.goto(f"{server.url}/c/{server.channel_id('general')}")
        await wait_connected(page)
        await page.get_by_role("link", name="Tasks").click()
        await expect(page.get_by_role("heading", name="Tasks · General")).to_be_visible()

        # Create a task that needs approval, with a card in #general.
        await page.get_by_role("button", name="New task").click()
        form = page.get_by_role("form", name="New task")
        await form.get_by_label("Title").fill("Buy GPUs")
        await form.get_by_label("Description").fill("Two **H100**s")
        await form.get_by_label("Status").select_option("pending_approval")
        await form.get_by_label("Card in").select_option(label="#general")
        await form.get_by_label("Priority").select_option("high")
        await form.get_by_role("button", name="Create task").click()
        pending = page.locator("[data-column=pending_approval] li.task-card")
        await expect(pending).to_have_count(1)
        await expect(pending.locator(".task-title")).to_have_text("#1 Buy GPUs")
        await expect(pending.locator(".priority")).to_have_text("high")

        # A member sees it live but cannot approve it.
        other = await signed_in_page(browser, server, member, viewport={"width": 1600, "height": 1000})
        await other.page.goto(f"{server.url}/tasks")
        await wait_connected(other.page)
        theirs = other.page.locator("li.task-card", has_text="Buy GPUs")
        await expect(theirs).to_have_attribute("data-status", "pending_approval")
        await expect(theirs.get_by_role("button", name="Approve")).to_have_count(0)

        # The operator approves; it moves through its statuses, and the member's board follows.
        card = page.locator("li.task-card", has_text="Buy GPUs")
        await card.get_by_role("button", name="Approve").click()
        await expect(card).to_have_attribute("data-status", "ready")
        await expect(page.locator("[data-column=ready] li.task-card")).to_have_count(1)
        await expect(theirs).to_have_attribute("data-status", "ready")
        await card.get_by_role("button", name="Start").click()
        await expect(card).to_have_attribute("data-status", "in_progress")

        # Only the allowed moves are offered (issue 13); a card dropped where it cannot go stays,
        # and the allowed moves are named.
        options = await card.get_by_label("Move to").locator("option").all_inner_texts()
        assert options == ["Move to…", "Done", "Ready", "Failed", "Backlog"], options
        await card.drag_to(page.locator("[data-column=pending_approval]"))
        await expect(page.locator(".page-body > .form-error")).to_have_text(
            "#1 cannot move from In progress to Pending approval. It can move to: Done, Ready, Failed, Backlog."
        )
        await expect(card).to_have_attribute("data-status", "in_progress")

        await card.get_by_role("button", name="Complete").click()
        await expect(card).to_have_attribute("data-status", "done")
        await expect(theirs).to_have_attribute("data-status", "done")
        await card.get_by_role("button", name="Reopen").click()
        await expect(card).to_have_attribute("data-status", "ready")

        # The task's page: comments and history, live for the member too.
        await card.get_by_role("link", name="#1 Buy GPUs").click()
        await expect(page.get_by_role("heading", name="#1 Buy GPUs")).to_be_visible()
        await expect(page.locator(".task-view .md strong")).to_have_text("H100")
        await other.page.goto(f"{server.url}/tasks/{await card_task_id(page)}")
        await wait_connected(other.page)
        await page.get_by_label("Add a comment").fill("Ordered from the usual vendor.")
        await page.get_by_role("button", name="Comment").click()
        await expect(page.locator(".comments li")).to_have_count(1)
        await expect(other.page.locator(".comments li")).to_contain_text("Ordered from the usual vendor.")
        history = page.locator(".history li")
        await expect(history.filter(has_text="approved it")).to_have_count(1)
        await expect(history.filter(has_text="commented")).to_have_count(1)
        await page.get_by_label("Assignee").select_option(label="Mo Member")
        await page.get_by_label("Priority").select_option("critical")
        await page.locator("form.task-edit").get_by_role("button", name="Save").click()
        await expect(page.locator(".history li").filter(has_text="assigned it to Mo Member")).to_have_count(1)
        await expect(other.page.get_by_label("Assignee")).to_have_value(member.id)

        # The task's card in #general shows it live.
        async with server.client() as client:
            task = (await client.get("/v1/tasks")).json()["tasks"][0]
            assert task["status"] == "ready" and task["assignee_id"] == member.id and task["priority"] == "critical"
        await page.goto(f"{server.url}/c/{server.channel_id('general')}")
        await page.locator("article.thread-row a", has_text="Buy GPUs").click()
        await expect(page.locator(".block-task")).to_have_attribute("data-status", "ready")
        await expect(page.locator(".block-task")).to_contain_text("Assignee: Mo Member")
        await expect(page.locator(".decided")).to_have_text(decided("Approved by Opal Operator"))
        await watched.assert_clean()
        await other.assert_clean()
    finally:
        server.stop()


async def card_task_id(page: Page) -> str:
    return str(await page.locator(".task-view").get_attribute("data-task-id"))
