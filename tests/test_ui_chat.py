"""The chat essentials in real Chromium (issue 13): search with `/` and jumping to the hit, reacting,
editing and deleting (live in a second browser), the inbox and per-thread unread across two
sessions of one person, a direct conversation with an agent, and `@` completion."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import Browser, expect

from .browser import new_context, new_page, open_thread, post, sign_in, sign_in_person, wait_connected, wait_for_js
from .support import Server, invite

pytestmark = pytest.mark.browser


async def test_search_with_slash_and_jump_to_the_hit(server: Server, browser: Browser) -> None:
    channel_id, thread_id = await open_thread(server, "general", "release plans for the week")
    hit = await post(server, f"/v1/threads/{thread_id}/messages", {"text": "the zebracorn rollout starts Monday"})
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/c/{channel_id}")
    await wait_connected(page)
    await page.locator("main").click()
    await page.keyboard.press("/")
    box = page.get_by_role("searchbox", name="Search messages")
    await expect(box).to_be_focused()
    await box.fill("zebracorn from:me")
    await box.press("Enter")
    results = page.get_by_role("list", name="Results for zebracorn from:me")
    await expect(results.get_by_role("listitem")).to_have_count(1)
    await expect(results.locator("mark")).to_have_text("zebracorn")
    await results.get_by_role("link").first.click()
    await page.wait_for_url(f"**/t/{thread_id}/m/{hit['message']['id']}")
    await expect(page.locator(f"article.msg.target[data-message-id='{hit['message']['id']}']")).to_be_visible()
    await watched.assert_clean()


async def test_react_edit_and_delete_live_for_everyone(server: Server, browser: Browser) -> None:
    _, thread_id = await open_thread(server, "general", "lunch?")
    member = invite(server, server.token, "member", name="Mia Member")
    pages = []
    for person in (None, member):
        context = await new_context(browser)
        if person is None:
            await sign_in(context, server)
        else:
            await sign_in_person(context, server, person)
        watched = await new_page(context)
        await watched.page.goto(f"{server.url}/t/{thread_id}")
        await wait_connected(watched.page)
        pages.append(watched)
    owner, other = pages[0].page, pages[1].page
    await owner.get_by_label("Reply in this thread").fill("pizza at noon")
    await owner.get_by_label("Reply in this thread").press("Enter")
    mine = owner.locator("article.msg[data-author-kind=user]").filter(has_text="pizza at noon")
    await expect(mine).to_have_attribute("data-message-id", re.compile(r"^msg_"))
    message_id = await mine.get_attribute("data-message-id")
    mine = owner.locator(f"article.msg[data-message-id='{message_id}']")

    # React with the keyboard: the toolbar shows on focus; the picker takes the focus.
    await mine.get_by_role("button", name="React").focus()
    await owner.keyboard.press("Enter")
    await expect(owner.get_by_role("button", name="React with 👍")).to_be_focused()
    for _ in range(3):  # 👍 ❤️ 😄 🎉
        await owner.keyboard.press("Tab")
    await expect(owner.get_by_role("button", name="React with 🎉")).to_be_focused()
    await owner.keyboard.press("Enter")
    reaction = mine.get_by_role("button", name="🎉 1: Olive Owner. Take back yours")
    await expect(reaction).to_have_attribute("aria-pressed", "true")
    theirs = other.locator(f"article.msg[data-message-id='{message_id}']")
    await expect(theirs.locator(".reaction[data-emoji='🎉']")).to_have_attribute("aria-pressed", "false")
    await theirs.locator(".reaction[data-emoji='🎉']").click()
    await expect(mine.locator(".reaction[data-emoji='🎉'] .count")).to_have_text("2")

    # Edit: Enter saves; both see the new text and "edited" with the earlier version.
    await mine.get_by_role("button", name="Edit").click()
    editor = mine.get_by_label("Edit your message")
    await expect(editor).to_be_focused()
    await editor.fill("pizza at one")
    await editor.press("Enter")
    await expect(theirs.locator(".body")).to_have_text("pizza at one")
    await theirs.locator(".edited summary").click()
    await expect(theirs.get_by_role("list", name="Earlier versions")).to_contain_text("pizza at noon")
    # Mia may not edit or delete the owner's message: no such buttons for her.
    await expect(theirs.get_by_role("button", name="Edit")).to_have_count(0)
    await expect(theirs.get_by_role("button", name="Delete")).to_have_count(0)

    # Delete, confirmed in a dialog: a tombstone for everyone.
    await mine.get_by_role("button", name="Delete").click()
    await owner.get_by_role("dialog").get_by_role("button", name="Delete").click()
    await expect(theirs.locator(".body.deleted")).to_have_text("This message was deleted.")
    await expect(mine.locator(".reaction")).to_have_count(0)
    for watched in pages:
        await watched.assert_clean()


async def test_inbox_unread_is_cleared_on_both_sessions(server: Server, browser: Browser) -> None:
    reader = invite(server, server.token, "member", name="Rae Reader")
    channel_id = server.channel_id("general")
    posted = await post(
        server, f"/v1/channels/{channel_id}/messages", {"text": f"@{reader.user['handle']} can you check?"}
    )
    thread_id = posted["thread"]["id"]
    await post(server, f"/v1/threads/{thread_id}/messages", {"text": "the numbers are in"})
    sessions = []
    for _ in range(2):  # two devices of one person
        context = await new_context(browser)
        await sign_in_person(context, server, reader)
        watched = await new_page(context)
        await watched.page.goto(f"{server.url}/inbox")
        await wait_connected(watched.page)
        sessions.append(watched)
    first, second = sessions[0].page, sessions[1].page
    for page in (first, second):
        item = page.locator(f".inbox-item[data-thread-id='{thread_id}']")
        await expect(item).to_have_attribute("data-unread", "2")
        await expect(page.locator("a[data-inbox-unread]")).to_have_attribute("data-inbox-unread", "1")
    await first.locator(f".inbox-item[data-thread-id='{thread_id}'] a").click()
    await expect(first.get_by_role("heading", name=f"@{reader.user['handle']} can you check?")).to_be_visible()
    # Read on one device: cleared on the other, live.
    await expect(second.locator(f".inbox-item[data-thread-id='{thread_id}']")).to_have_attribute("data-unread", "0")
    await expect(second.locator("a[data-inbox-unread]")).to_have_attribute("data-inbox-unread", "0")
    # A new reply makes it unread again on the device that is not looking at the thread.
    await post(server, f"/v1/threads/{thread_id}/messages", {"text": "one more thing"})
    await expect(second.locator(f".inbox-item[data-thread-id='{thread_id}']")).to_have_attribute("data-unread", "1")
    await expect(second.locator(f".inbox-item[data-thread-id='{thread_id}'] .last-reply")).to_contain_text(
        "one more thing"
    )
    await second.get_by_role("button", name=f"Mark read: @{reader.user['handle']} can you check?").click()
    await expect(second.locator(f".inbox-item[data-thread-id='{thread_id}']")).to_have_attribute("data-unread", "0")
    for watched in sessions:
        await watched.assert_clean()


async def test_a_direct_conversation_with_the_agent_and_at_completion(server: Server, browser: Browser) -> None:
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/dms")
    await wait_connected(page)
    await page.get_by_role("group", name="Start a conversation with").get_by_label("Spacebot (agent)").check()
    await page.get_by_role("button", name="Open conversation").click()
    await expect(page.get_by_role("heading", name="Spacebot")).to_be_visible()
    box = page.get_by_label("Start a new thread in Spacebot")
    await box.fill("what time is it?")
    await box.press("Enter")
    # The new thread appears; open it, and the agent answers there.
    await page.locator("article.thread-row a").first.click()
    await expect(page.locator("article.msg[data-author-kind=agent][data-state=completed]")).to_have_count(1)
    # The direct conversation is in the sidebar, and private: not among the channels.
    await expect(page.get_by_role("list", name="Direct messages").get_by_role("link")).to_have_text(["Spacebot"])
    # `@` completion: type, choose with the keyboard, insert.
    reply = page.get_by_label("Reply in this thread")
    await reply.fill("thanks @spa")
    await expect(reply).to_have_attribute("data-completing", "true")
    option = page.get_by_role("option", name="Spacebot @spacebot · agent")
    await expect(option).to_have_attribute("aria-selected", "true")
    await reply.press("Enter")
    await expect(reply).to_have_value("thanks @spacebot ")
    await expect(reply).to_have_attribute("data-completing", "false")
    assert await reply.get_attribute("aria-activedescendant") is None
    await wait_for_js(page, "document.querySelectorAll('article.msg').length >= 2")
    await watched.assert_clean()


async def test_hash_completes_a_channel_and_at_a_person(server: Server, browser: Browser) -> None:
    mia = invite(server, server.token, "member", name="Mia Member")
    channel_id = server.channel_id("general")
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/c/{channel_id}")
    await wait_connected(page)
    box = page.get_by_label("Start a new thread in #general")
    await box.fill("see #op")
    await expect(box).to_have_attribute("data-completing", "true")
    channels = page.get_by_role("listbox", name="Channels")
    await expect(channels.get_by_role("option")).to_have_count(1)
    await expect(channels.get_by_role("option", name="#ops")).to_have_attribute("aria-selected", "true")
    await box.press("Enter")
    await expect(box).to_have_value("see #ops ")
    await expect(box).to_have_attribute("data-completing", "false")
    # A person by a part of their name: the handle goes in; Tab takes it as Enter does.
    await box.press_sequentially("and ask @mem")
    people = page.get_by_role("listbox", name="People and agents")
    option = people.get_by_role("option", name=f"Mia Member @{mia.user['handle']}")
    await expect(option).to_have_attribute("aria-selected", "true")
    await expect(people.get_by_role("option")).to_have_count(1)
    await box.press("Tab")
    await expect(box).to_have_value(f"see #ops and ask @{mia.user['handle']} ")
    await box.press("Enter")
    await expect(page.locator("article.thread-row .thread-title").first).to_have_text(
        f"see #ops and ask @{mia.user['handle']}"
    )
    # The completed handle is a mention: Mia finds the thread in her inbox.
    async with httpx.AsyncClient(base_url=server.url, headers=mia.auth, timeout=30) as client:
        inbox = (await client.get("/v1/inbox")).json()["threads"]
    assert [t["reasons"] for t in inbox] == [["mentioned"]]
    await watched.assert_clean()


async def test_thread_list_unread_last_reply_and_repliers_on_both_sessions(server: Server, browser: Browser) -> None:
    reader = invite(server, server.token, "member", name="Rae Reader")
    ann = invite(server, server.token, "member", name="Ann Analyst")
    channel_id = server.channel_id("general")
    root = await post(server, f"/v1/channels/{channel_id}/messages", {"text": "Quarterly numbers"})
    thread_id = root["thread"]["id"]
    async with httpx.AsyncClient(base_url=server.url, headers=ann.auth, timeout=30) as client:
        answered = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": "revenue is up"})
        assert answered.status_code == 201
    sessions = []
    for _ in range(2):  # two devices of one person
        context = await new_context(browser)
        await sign_in_person(context, server, reader)
        watched = await new_page(context)
        await watched.page.goto(f"{server.url}/c/{channel_id}")
        await wait_connected(watched.page)
        sessions.append(watched)
    first, second = sessions[0].page, sessions[1].page
    for page in (first, second):
        row = page.locator(f"article.thread-row[data-thread-id='{thread_id}']")
        await expect(row.locator(".badge")).to_have_accessible_name("2 unread")
        await expect(row.locator(".last-reply")).to_have_text("Ann Analyst: revenue is up")
        await expect(row.locator(".repliers")).to_have_text("Ann Analyst")
        await expect(row.locator(".thread-meta .author")).to_have_text("Olive Owner")
    # Read on one device: the badge goes on the other, live.
    await first.locator(f"article.thread-row[data-thread-id='{thread_id}'] a").click()
    await expect(first.get_by_role("heading", name="Quarterly numbers")).to_be_visible()
    row = second.locator(f"article.thread-row[data-thread-id='{thread_id}']")
    await expect(row.locator(".badge")).to_have_count(0)
    # A new reply: unread again where nobody is looking, its preview and its author among the repliers.
    latest = await post(server, f"/v1/threads/{thread_id}/messages", {"text": "costs are flat"})
    await expect(row.locator(".badge")).to_have_accessible_name("1 unread")
    await expect(row.locator(".last-reply")).to_have_text("Olive Owner: costs are flat")
    await expect(row.locator(".repliers")).to_have_text("Olive Owner, Ann Analyst")
    # Edited, the last reply's preview follows.
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
        edited = await client.patch(f"/v1/messages/{latest['message']['id']}", json={"text": "costs are down"})
        assert edited.status_code == 200
    await expect(row.locator(".last-reply")).to_have_text("Olive Owner: costs are down")
    for watched in sessions:
        await watched.assert_clean()
