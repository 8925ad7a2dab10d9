"""The web UI in real Chromium, continued (issue 4): keyboard and ARIA, a phone-width layout,
accounts (invitation, devices, sign-out and sign-in), deep links into a long thread, unread
counts and attachments. Each test runs its own `spacechat serve` and browser context."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, FilePayload, expect

from .browser import (
    WEB_UI,
    new_context,
    new_page,
    open_thread,
    post,
    sign_in,
    wait_connected,
    wait_for_js,
)
from .support import Server, invite

pytestmark = pytest.mark.browser


# --- keyboard, screen readers, phones --------------------------------------------------------------


async def test_keyboard_navigation_and_aria_roles(server: Server, browser: Browser) -> None:
    channel_id = server.channel_id("general")
    for i in range(5):
        await post(server, f"/v1/channels/{channel_id}/messages", {"text": f"topic number {i}"})
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/c/{channel_id}")
    await wait_connected(page)

    # Landmarks and roles.
    await expect(page.get_by_role("navigation", name="Channels")).to_be_visible()
    await expect(page.get_by_role("main")).to_be_visible()
    feed = page.get_by_role("feed", name="Threads in #general")
    await expect(feed.get_by_role("article")).to_have_count(5)
    await expect(page.locator("a[data-channel-name=general]")).to_have_attribute("aria-current", "page")
    await expect(page.get_by_role("status").first).to_be_attached()
    assert await page.locator(".skip-link").get_attribute("href") == "#main"

    # Arrow keys move between threads; Enter opens one; Escape goes back to the channel.
    await page.locator("article.thread-row").first.locator("a").focus()
    await page.keyboard.press("ArrowDown")
    focused = await page.evaluate("document.activeElement.closest('article').dataset.index")
    assert focused == "1"
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="topic number 3")).to_be_visible()
    messages = page.get_by_role("feed", name="Messages in topic number 3")
    await expect(messages.get_by_role("article")).to_have_count(1)
    await messages.focus()
    await page.keyboard.press("ArrowUp")
    assert await page.evaluate("document.activeElement.getAttribute('role') || document.activeElement.tagName") in (
        "ARTICLE",
        "article",
    )
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("heading", name="general", exact=True, level=1)).to_be_visible()

    # Ctrl+K jumps to a channel by name; Alt+ArrowDown steps to the next channel.
    await page.keyboard.press("Control+k")
    await expect(page.get_by_label("Filter channels")).to_be_focused()
    await page.keyboard.type("incid")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="incidents", exact=True, level=1)).to_be_visible()
    await page.keyboard.press("Alt+ArrowDown")
    await expect(page.locator("a.channel-link[aria-current=page]")).not_to_have_attribute(
        "data-channel-name", "incidents"
    )

    # "?" lists the shortcuts in a modal dialog; Escape closes it.
    await page.locator("a.channel-link").first.focus()
    await page.keyboard.press("?")
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(shortcuts).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(shortcuts).to_have_count(0)
    await watched.assert_clean()
    await context.close()


async def test_phone_width_layout(server: Server, browser: Browser) -> None:
    _, thread_id = await open_thread(server, "general", "A long first message " * 30)
    context = await new_context(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(page)
    await expect(page.locator("article.msg")).to_have_count(1)

    async def no_horizontal_overflow() -> None:
        width = await page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1] == 390, width

    await no_horizontal_overflow()
    sidebar = page.get_by_role("navigation", name="Channels")
    await expect(sidebar).to_be_hidden()
    menu = page.get_by_role("button", name="Channels")
    await expect(menu).to_have_attribute("aria-expanded", "false")
    composer = page.get_by_label("Reply in this thread")
    await expect(composer).to_be_in_viewport()
    box = await composer.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390

    await menu.click()
    await expect(sidebar).to_be_visible()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await page.locator("a[data-channel-name=general]").click()
    await expect(sidebar).to_be_hidden()
    await expect(page.get_by_role("heading", name="general", exact=True, level=1)).to_be_visible()
    await no_horizontal_overflow()
    manifest = await page.evaluate("fetch('/manifest.webmanifest').then((r) => r.json())")
    assert manifest["display"] == "standalone" and any(i["sizes"] == "512x512" for i in manifest["icons"])
    await watched.assert_clean()
    await context.close()


async def test_invitation_devices_logout_and_login(server: Server, browser: Browser) -> None:
    made = await post(server, "/v1/invitations", {"role": "member"})
    context = await new_context(browser)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/invite#token={made['token']}")
    await expect(page.get_by_role("heading", name="Join Spacechat")).to_be_visible()
    await page.get_by_label("Your name").fill("Ivy Invitee")
    await page.get_by_label("Email").fill("ivy@example.com")
    await page.get_by_label("Password (at least 10 characters)").fill("a long enough passphrase")
    await page.get_by_label("Repeat the password").fill("a long enough passphrase")
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("navigation", name="Channels")).to_be_visible()
    await expect(page.locator(".sidebar-foot .me")).to_have_text("Ivy Invitee")
    # A member cannot create channels: the control is not offered.
    await expect(page.get_by_role("button", name="Create a channel")).to_have_count(0)

    await page.get_by_role("link", name="Settings and devices").click()
    devices = page.locator("li.device")
    await expect(devices).to_have_count(1)
    await expect(devices.first).to_contain_text("this device")

    await page.get_by_role("button", name="Sign out", exact=True).first.click()
    await expect(page.get_by_role("heading", name="Sign in to Spacechat")).to_be_visible()
    await page.get_by_label("Email").fill("ivy@example.com")
    await page.get_by_label("Password").fill("a long enough passphrase")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("navigation", name="Channels")).to_be_visible()
    await wait_connected(page)
    me = await page.evaluate("fetch('/v1/me').then((r) => r.json())")
    assert me["user"]["email"] == "ivy@example.com"
    await watched.assert_clean()
    await context.close()


async def test_deep_link_opens_the_message_in_a_long_thread(server: Server, browser: Browser) -> None:
    channel_id, thread_id = await open_thread(server, "general", "Long thread")
    async with server.client() as client:

        async def reply(i: int) -> dict[str, Any]:
            response = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": f"reply {i}"})
            assert response.status_code == 201
            return dict(response.json()["message"])

        sent = []
        for start in range(0, 600, 50):
            sent.extend(await asyncio.gather(*(reply(i) for i in range(start, start + 50))))
    target = next(m for m in sent if m["text"] == "reply 123")
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}/m/{target['id']}")
    row = page.locator(f"article.msg[data-message-id='{target['id']}']")
    await expect(row).to_be_in_viewport()
    await expect(row).to_have_class("row msg target")
    # Only a window of the thread is in the DOM.
    assert await page.locator("article.msg").count() < 80
    # Scrolling up loads older pages, keeping the rows in order.
    # (Each older page keeps the view where it was, as a chat does: scroll up again for the next.)
    await wait_for_js(
        page,
        """(() => {
          document.querySelector('.thread-view .scroller').scrollTop = 0;
          const bodies = [...document.querySelectorAll('article.msg .body')];
          return bodies.some((b) => b.textContent.trim() === 'Long thread');
        })()""",
    )
    seqs = await page.evaluate("[...document.querySelectorAll('article.msg')].map((a) => Number(a.dataset.seq))")
    assert seqs == sorted(seqs)
    await watched.assert_clean()
    await context.close()
    _ = channel_id


async def test_unread_counts_follow_other_peoples_messages_and_clear_when_read(
    server: Server, browser: Browser
) -> None:
    person = invite(server, server.token, "member", name="Pat Poster")
    ops = server.channel_id("ops")
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/c/{server.channel_id('general')}")
    await wait_connected(page)
    ops_link = page.locator("a[data-channel-name=ops]")
    await expect(ops_link.locator(".badge")).to_have_count(0)
    async with httpx.AsyncClient(base_url=server.url, headers=person.auth, timeout=30) as client:
        for text in ("first", "second"):
            answer = await client.post(f"/v1/channels/{ops}/messages", json={"text": f"{text} news in ops"})
            assert answer.status_code == 201, answer.text
    await expect(ops_link.locator(".badge")).to_have_text("2")
    await expect(ops_link.locator(".badge")).to_have_attribute("aria-label", "2 unread")
    await expect(ops_link).to_have_class("channel-link unread")
    await ops_link.click()
    await expect(page.locator("article.thread-row")).to_have_count(2)
    await expect(ops_link.locator(".badge")).to_have_count(0)
    # The marker moved on the server too: a fresh load shows no unread.
    async with server.client() as client:

        async def unread() -> int:
            channels = (await client.get("/v1/channels")).json()["channels"]
            return int(next(c for c in channels if c["id"] == ops)["unread_count"])

        for _ in range(100):
            if await unread() == 0:
                break
            await asyncio.sleep(0.1)
        assert await unread() == 0
    await watched.assert_clean()
    await context.close()


async def test_attach_files_and_see_previews(server: Server, browser: Browser) -> None:
    _, thread_id = await open_thread(server, "general", "Files go here")
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(page)
    picture = (WEB_UI / "icons" / "icon-192.png").read_bytes()
    files: list[FilePayload] = [
        {"name": "chart.png", "mimeType": "image/png", "buffer": picture},
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"remember the milk"},
    ]
    await page.locator(".composer input[type=file]").set_input_files(files)
    await expect(page.locator(".upload[data-upload=done]")).to_have_count(2)
    box = page.get_by_label("Reply in this thread")
    await box.fill("two files")
    await box.press("Enter")
    sent = page.locator("article.msg[data-message-id]", has_text="two files")
    await expect(sent).to_have_count(1)
    image = sent.locator(".attachment.image img")
    await expect(image).to_have_attribute("alt", "chart.png")
    await wait_for_js(page, "[...document.querySelectorAll('.attachment.image img')].every((i) => i.naturalWidth > 0)")
    await expect(sent.locator(".attachment.file a")).to_have_attribute("download", "notes.txt")
    await expect(page.locator(".upload")).to_have_count(0)
    await watched.assert_clean()
    await context.close()
