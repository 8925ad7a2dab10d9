"""Notifications, presence and typing in real Chromium (issue 13): desktop notifications through
the service worker with the permission granted in the browser context, a muted channel that stays
quiet, typing shown to the others live, and people's presence."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from .browser import new_context, new_page, sign_in_person, wait_connected, wait_for_js
from .support import Person, Server, invite

pytestmark = pytest.mark.browser

NOTIFICATIONS = """async () => {
  const registration = await navigator.serviceWorker.getRegistration();
  if (!registration) return [];
  const shown = await registration.getNotifications();
  return shown.map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}));
}"""


async def shown(page: Page) -> list[dict[str, Any]]:
    return list(await page.evaluate(NOTIFICATIONS))


async def post_as(server: Server, person: Person | None, path: str, text: str) -> dict[str, Any]:
    headers = person.auth if person is not None else server.auth
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        response = await client.post(path, json={"text": text})
        assert response.status_code == 201, response.text
        return dict(response.json())


async def signed_in(browser: Browser, server: Server, person: Person, **options: Any) -> Any:
    context = await new_context(browser, **options)
    await sign_in_person(context, server, person)
    return context, await new_page(context)


async def test_a_reply_in_my_thread_notifies_me_and_a_muted_channel_does_not(server: Server, browser: Browser) -> None:
    olivia = invite(server, server.token, "member", name="Olivia Ops")
    general, ops = server.channel_id("general"), server.channel_id("ops")
    mine = await post_as(server, olivia, f"/v1/channels/{general}/messages", "Can someone check the release notes?")
    other = await post_as(server, olivia, f"/v1/channels/{ops}/messages", "Disk alert on db-2")
    context, watched = await signed_in(browser, server, olivia, permissions=["notifications"])
    page = watched.page
    await page.goto(f"{server.url}/c/{ops}")
    await wait_connected(page)
    await wait_for_js(page, "navigator.serviceWorker.controller !== null")
    await page.goto(f"{server.url}/settings")
    await expect(page.locator("[data-permission=granted]")).to_contain_text("On")
    await page.goto(f"{server.url}/c/{ops}")
    await wait_connected(page)

    reply = await post_as(server, None, f"/v1/threads/{mine['thread']['id']}/messages", "Checked: two typos fixed")
    first = await wait_for_js(page, f"({NOTIFICATIONS})().then((list) => list.length && list)")
    assert first == [
        {
            "title": "Olive Owner replied in “Can someone check the release notes?”",
            "body": "Checked: two typos fixed",
            "tag": reply["message"]["id"],
            "url": f"/t/{mine['thread']['id']}/m/{reply['message']['id']}",
        }
    ]

    # Mute #general from its header; a reply there is quiet, one in #ops is not (and comes after).
    await page.goto(f"{server.url}/c/{general}")
    await page.get_by_label("Notifications for #general").select_option("muted")
    await expect(page.locator(".sr-only[role=status]")).to_have_text("Notifications for #general: muted")
    async with httpx.AsyncClient(base_url=server.url, headers=olivia.auth, timeout=30) as client:
        assert (await client.get("/v1/me/notifications")).json()["levels"] == {general: "muted"}
    quiet = await post_as(server, None, f"/v1/threads/{mine['thread']['id']}/messages", "Also the changelog")
    loud = await post_as(server, None, f"/v1/threads/{other['thread']['id']}/messages", "db-2 is fine now")
    arrived = f"list.some((n) => n.tag === {loud['message']['id']!r})"
    tags = await wait_for_js(page, f"({NOTIFICATIONS})().then((list) => {arrived} && list.map((n) => n.tag))")
    assert quiet["message"]["id"] not in tags
    # The level survives a reload (it is stored on the server).
    await page.reload()
    await expect(page.get_by_label("Notifications for #general")).to_have_value("muted")
    await watched.assert_clean()
    await context.close()


async def test_a_mention_and_a_direct_message_show_as_notifications(server: Server, browser: Browser) -> None:
    olivia = invite(server, server.token, "member", name="Olivia Ops")
    general = server.channel_id("general")
    context, watched = await signed_in(browser, server, olivia, permissions=["notifications"])
    page = watched.page
    await page.goto(f"{server.url}/c/{general}")
    await wait_connected(page)
    await wait_for_js(page, "navigator.serviceWorker.controller !== null")

    text = f"@{olivia.user['handle']} could you look at the deploy?"
    mention = await post_as(server, None, f"/v1/channels/{general}/messages", text)
    first = await wait_for_js(page, f"({NOTIFICATIONS})().then((list) => list.length && list)")
    assert first == [
        {
            "title": "Olive Owner mentioned you in #general",
            "body": text,
            "tag": mention["message"]["id"],
            "url": f"/t/{mention['thread']['id']}/m/{mention['message']['id']}",
        }
    ]
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
        dm = (await client.post("/v1/dms", json={"user_ids": [olivia.id]})).json()["dm"]
    direct = await post_as(server, None, f"/v1/channels/{dm['id']}/messages", "Lunch at one?")
    arrived = f"list.some((n) => n.tag === {direct['message']['id']!r})"
    both = await wait_for_js(page, f"({NOTIFICATIONS})().then((list) => {arrived} && list)")
    assert {"title": "Olive Owner (direct message)", "body": "Lunch at one?"} in [
        {"title": n["title"], "body": n["body"]} for n in both
    ]
    await watched.assert_clean()
    await context.close()


async def test_typing_and_presence_show_live_to_the_others(server: Server, browser: Browser) -> None:
    rita = invite(server, server.token, "member", name="Rita Reader")
    tom = invite(server, server.token, "member", name="Tom Typist")
    general = server.channel_id("general")
    root = await post_as(server, rita, f"/v1/channels/{general}/messages", "Standup notes")
    thread = f"{server.url}/t/{root['thread']['id']}"
    rita_context, rita_watched = await signed_in(browser, server, rita)
    tom_context, tom_watched = await signed_in(browser, server, tom)
    reader, typist = rita_watched.page, tom_watched.page
    await reader.goto(thread)
    await wait_connected(reader)
    await typist.goto(thread)
    await wait_connected(typist)

    await typist.get_by_label("Reply in this thread").type("Shipping the fix at")
    line = reader.locator(".typing-line")
    await expect(line).to_have_text("Tom Typist is typing…")
    await typist.get_by_label("Reply in this thread").type(" noon")
    await typist.get_by_label("Reply in this thread").press("Enter")
    sent = reader.locator("article.msg", has_text="Shipping the fix at noon")
    await expect(sent).to_have_count(1)
    await expect(line).to_have_text("")
    # Tom's page is open: his messages show him active; once he leaves, away.
    await expect(sent.locator(".presence-dot")).to_have_attribute("data-presence", "active")
    await tom_context.close()
    await expect(sent.locator(".presence-dot")).to_have_attribute("data-presence", "away")
    await rita_watched.assert_clean()
    await rita_context.close()
