"""Accessibility in real Chromium (issue 18). Every browser test is checked with axe-core on every
page it visits (tests/a11y.py, wired into tests/browser.py); here: a tour of every view of the app
at desktop and at phone width (each page checked in light and in dark as it is reached, and the
last one in all four), the skip link moving the focus to the main region, and the focus staying
on a task card that the keyboard moved."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from .a11y import INIT_SCRIPT as AXE_SCRIPT
from .a11y import ContextAudit
from .browser import (
    TIMEOUT_MS,
    Watched,
    new_context,
    new_page,
    open_thread,
    post,
    sign_in,
    signed_in_page,
    wait_connected,
    wait_for_js,
)
from .support import Server

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

RICH = """Release notes with **bold**, a [link](https://example.com), `code` and a table:

| step | owner | what the step does, at length, so that the table is wider than a phone |
|---|---|---|
| build | @ann | compiles_every_module_of_the_release_and_checks_their_signatures_one_by_one |

```python
print("hello")  # and a line of code much longer than a phone is wide: wrapped, not a scroll region
```"""


async def visit(watched: Watched, url: str, landmark: Any) -> None:
    """Go to a page, wait for what it shows, and hold it to zero violations (light and dark)."""
    await watched.page.goto(url)
    await expect(landmark).to_be_visible()
    await watched.assert_clean()


@pytest.mark.slow
@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_every_view_has_no_axe_violation(server: Server, browser: Browser, size: dict[str, Any]) -> None:
    channel_id, thread_id = await open_thread(server, "general", "A thread to read")
    reply = await post(server, f"/v1/threads/{thread_id}/messages", {"text": RICH})
    empty = (await post(server, "/v1/channels", {"name": "quiet-room", "topic": "nothing yet"}))["channel"]
    task = (await post(server, "/v1/tasks", {"title": "Write the notes", "status": "ready"}))["task"]
    async with server.client() as client:
        agents = (await client.get("/v1/agents")).json()["agents"]
    watched = await signed_in_page(browser, server, **size)
    page = watched.page
    url = server.url
    heading = page.get_by_role("heading", level=1)

    await visit(watched, f"{url}/c/{channel_id}", page.get_by_role("feed", name="Threads in #general"))
    await wait_connected(page)
    await visit(watched, f"{url}/c/{empty['id']}", page.get_by_text("No threads yet. Start one below."))
    await visit(watched, f"{url}/t/{thread_id}", page.locator("article.msg .body table"))
    await visit(watched, f"{url}/t/{thread_id}/m/{reply['message']['id']}", page.locator("article.msg.target"))
    await page.get_by_role("button", name="Metrics").click()
    await expect(page.locator("#thread-metrics")).to_be_visible()
    await watched.assert_clean()
    await page.get_by_role("button", name="Metrics").click()
    await visit(watched, f"{url}/settings", page.get_by_role("heading", name="Reading offline"))
    await visit(watched, f"{url}/tasks", page.locator(".board[data-loaded=true]"))
    await visit(watched, f"{url}/tasks/{task['id']}", heading)
    await visit(watched, f"{url}/dashboard", heading)
    if agents:
        await visit(watched, f"{url}/agents/{agents[0]['id']}", heading)
    await visit(watched, f"{url}/incidents", heading)
    await visit(watched, f"{url}/audit", page.locator("table.audit"))
    await visit(watched, f"{url}/nowhere", page.get_by_text("There is nothing at this address."))

    # Dialogs: the shortcuts, and creating a channel.
    await visit(watched, f"{url}/c/{channel_id}", page.get_by_role("feed", name="Threads in #general"))
    await page.evaluate("document.activeElement && document.activeElement.blur()")  # not in the message box
    await page.keyboard.press("?")
    await expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    await watched.assert_clean()
    await page.keyboard.press("Escape")
    if size is PHONE:
        await page.get_by_role("button", name="Channels").click()  # the drawer
        await expect(page.get_by_role("navigation", name="Channels")).to_be_visible()
        await watched.assert_clean()
    await page.get_by_role("button", name="Create a channel").click()
    await expect(page.get_by_role("dialog", name="Create a channel")).to_be_visible()
    await watched.assert_clean()
    await page.keyboard.press("Escape")

    # Signed out: sign-in and an invitation.
    made = await post(server, "/v1/invitations", {"role": "member"})
    stranger = await new_page(await new_context(browser, **size))
    await visit(stranger, f"{url}/login", stranger.page.get_by_role("heading", name="Sign in to Spacechat"))
    await visit(
        stranger, f"{url}/invite#token={made['token']}", stranger.page.get_by_role("heading", name="Join Spacechat")
    )
    await watched.assert_clean()


# --- keyboard paths ----------------------------------------------------------------------------------


async def focused(page: Page) -> Any:
    return await page.evaluate(
        """(() => {
          const el = document.activeElement;
          const card = el && el.closest('li.task-card');
          return {tag: el ? el.tagName : null, id: el ? el.id : null, cls: el ? el.className : null,
                  card: card ? card.dataset.status : null, text: el ? el.textContent.trim() : null};
        })()"""
    )


async def test_the_skip_link_moves_the_focus_to_the_main_region(server: Server, browser: Browser) -> None:
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/settings")  # a page that focuses nothing by itself
    await wait_connected(page)
    await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    await page.keyboard.press("Tab")  # the first stop of the page
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()  # shown while focused
    await page.keyboard.press("Enter")
    assert (await focused(page))["id"] == "main"
    assert page.url.endswith("/settings")  # no #main in the address
    # The next Tab goes on inside the main region, not back to the sidebar.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.getElementById('main').contains(document.activeElement)")
    await watched.assert_clean()
    await context.close()


async def test_a_task_card_moved_by_keyboard_keeps_the_focus(server: Server, browser: Browser) -> None:
    task = (await post(server, "/v1/tasks", {"title": "Ship the beta", "status": "ready"}))["task"]
    watched = await signed_in_page(browser, server, viewport={"width": 1600, "height": 1000})
    page = watched.page
    await page.goto(f"{server.url}/tasks")
    await wait_connected(page)
    card = page.locator(f"li.task-card[data-task-id='{task['id']}']")
    await expect(card).to_have_attribute("data-status", "ready")

    # Enter on a move button: the card goes to In progress, and the focus goes with it.
    await card.get_by_role("button", name="Start").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("[data-column=in_progress] li.task-card")).to_have_count(1)
    await expect(card.locator(".task-title")).to_be_focused(timeout=TIMEOUT_MS)
    assert (await focused(page))["card"] == "in_progress"

    # "Move to" by keyboard: the same.
    await card.get_by_label("Move to").focus()
    await card.get_by_label("Move to").select_option("done")
    await card.get_by_role("button", name="Move", exact=True).focus()
    await page.keyboard.press("Enter")
    await expect(card).to_have_attribute("data-status", "done")
    await expect(card.locator(".task-title")).to_be_focused()

    # On the task's own page, the pressed move is replaced by others: the focus stays in its moves.
    await page.goto(f"{server.url}/tasks/{task['id']}")
    moves = page.locator(".task-view .task-moves")
    first_move = moves.get_by_role("button").first
    await expect(first_move).to_be_visible()
    await first_move.focus()
    status = await page.locator(".task-view").get_attribute("data-status")
    await page.keyboard.press("Enter")
    await expect(page.locator(".task-view")).not_to_have_attribute("data-status", status or "")
    await wait_for_js(page, "document.querySelector('.task-view .task-moves').contains(document.activeElement)")
    await watched.assert_clean()


# --- the audit itself ----------------------------------------------------------------------------


async def audited_page(browser: Browser, server: Server, *, with_axe: bool) -> tuple[ContextAudit, Page]:
    """A signed-in page on Settings in a context audited as every test's is (tests/browser.py),
    but kept out of the end-of-test check: these tests make violations on purpose."""
    context = await browser.new_context()
    if with_axe:
        await context.add_init_script(AXE_SCRIPT)
    audit = ContextAudit(context, "light")
    context.on("page", audit.watch)
    await sign_in(context, server)
    page = await context.new_page()
    await page.goto(f"{server.url}/settings")
    await expect(page.get_by_role("heading", name="Reading offline")).to_be_visible()
    await audit.settle()  # the checks after the navigation
    return audit, page


async def test_the_audit_reports_a_known_violation(server: Server, browser: Browser) -> None:
    audit, page = await audited_page(browser, server, with_axe=True)
    assert not audit.findings, audit.report()
    # An image with no text alternative in the app's main region.
    await page.evaluate(
        "document.getElementById('main').append(Object.assign(document.createElement('img'),"
        " {src: '/icons/icon-192.png', className: 'unlabelled'}))"
    )
    await audit.final()
    # Found in light and dark, at desktop and phone width, naming the element.
    found = {(f.rule, f.scheme, f.width) for f in audit.findings.values()}
    assert found == {("image-alt", scheme, width) for scheme in ("light", "dark") for width in ("1280 px", "390 px")}
    assert all('class="unlabelled"' in f.html for f in audit.findings.values()), audit.report()
    assert "image-alt (critical) on page /settings" in audit.report()
    await page.context.close()


async def test_a_page_axe_is_missing_from_fails_the_audit(server: Server, browser: Browser) -> None:
    """A failed injection (here: none) leaves the page unchecked, which is a finding, not a pass."""
    audit, page = await audited_page(browser, server, with_axe=False)
    assert {(f.rule, f.path, f.when) for f in audit.findings.values()} == {
        ("axe-missing", "/settings", "after a navigation")
    }
    assert "axe-missing (unchecked) on page /settings" in audit.report()
    await page.context.close()
