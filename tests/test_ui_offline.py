"""Offline-first in real Chromium (issue 18): queued sends keep the order they were written in,
across a reload and across two tabs; a refused send stops its thread's queue with Retry and
Delete; a thread read online opens offline after a reload, marked possibly stale, and catches up
from the realtime log (Last-Event-ID) when the connection returns; signing out clears what the
device kept. Each test runs its own `spacechat serve`; the network is cut with
`context.set_offline` (the server stays up, so others can post meanwhile)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request, expect

from .browser import (
    new_context,
    new_page,
    open_thread,
    post,
    service_worker_ready,
    sign_in,
    wait_connected,
    wait_for_js,
)
from .support import Server, toml_config

pytestmark = pytest.mark.browser


async def history(server: Server, thread_id: str) -> list[str]:
    async with server.client() as client:
        response = await client.get(f"/v1/threads/{thread_id}/history", params={"limit": 200})
        assert response.status_code == 200, response.text
        return [m["text"] for m in response.json()["messages"]]


async def shown_texts(page: Page) -> list[str]:
    """The delivered messages of the open thread, top to bottom."""
    return list(
        await page.evaluate(
            "[...document.querySelectorAll('article.msg[data-message-id]')]"
            ".sort((a, b) => Number(a.dataset.seq) - Number(b.dataset.seq))"
            ".map((a) => a.querySelector('.body').textContent.trim())"
        )
    )


async def open_offline_ready(context: BrowserContext, server: Server, thread_id: str) -> Page:
    """A page on the thread, connected, with the service worker ready (so a reload works offline)."""
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(page)
    await service_worker_ready(page)
    return page


async def a_thread_ready_for_offline(browser: Browser, server: Server, title: str) -> tuple[BrowserContext, Page, str]:
    """A new thread, and a signed-in context with a page on it ready to go offline."""
    _, thread_id = await open_thread(server, "general", title)
    context = await new_context(browser)
    await sign_in(context, server)
    return context, await open_offline_ready(context, server, thread_id), thread_id


async def write(page: Page, text: str) -> None:
    box = page.get_by_label("Reply in this thread")
    await box.fill(text)
    await box.press("Enter")
    await expect(page.locator("article.msg[data-pending]", has_text=text)).to_have_count(1)


# --- the order of queued sends ------------------------------------------------------------------


async def test_five_sends_queued_offline_arrive_in_the_order_written_after_a_reload(
    server: Server, browser: Browser
) -> None:
    context, page, thread_id = await a_thread_ready_for_offline(browser, server, "Order drill")

    await context.set_offline(True)
    texts = [f"m{i}" for i in range(1, 6)]
    for text in texts:
        await write(page, text)
    await expect(page.locator("article.msg[data-pending=queued]")).to_have_count(5)
    assert await page.locator("article.msg[data-pending] .chip").first.inner_text() == "waiting for the connection"

    await page.reload()  # offline: the service worker serves the app, the queue comes from IndexedDB
    pending = page.locator("article.msg[data-pending]")
    await expect(pending).to_have_count(5)
    assert [t.strip() for t in await pending.locator(".body").all_inner_texts()] == texts
    await context.set_offline(False)
    await wait_connected(page)
    await expect(page.locator("article.msg[data-message-id]")).to_have_count(6)
    await expect(pending).to_have_count(0)

    assert await history(server, thread_id) == ["Order drill", *texts]
    assert await shown_texts(page) == ["Order drill", *texts]
    await context.close()


async def test_a_refused_send_stops_its_threads_queue_with_retry_and_delete(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", toml_config(messages={"max_chars": 40})).start()
    try:
        context, page, thread_id = await a_thread_ready_for_offline(browser, server, "Refusal drill")

        await context.set_offline(True)
        too_long = "m3 " + "is much longer than the server takes " * 2
        texts = ["m1", "m2", too_long, "m4", "m5"]
        for text in texts:
            await write(page, text)
        await context.set_offline(False)

        # m1 and m2 go; m3 is refused (400) and stops the queue: m4 and m5 wait behind it.
        refused = page.locator("article.msg[data-pending=failed]")
        await expect(refused).to_have_count(1)
        await expect(refused.locator(".body")).to_have_text(too_long)
        await expect(refused.get_by_role("alert")).to_contain_text("longer than 40 characters")
        held = page.locator("article.msg[data-pending=held]")
        await expect(held).to_have_count(2)
        await expect(held.first.locator(".chip")).to_have_text("held: a message before it was not sent")
        assert await history(server, thread_id) == ["Refusal drill", "m1", "m2"]

        # Retry sends it again (refused again: still first in line, the rest still wait).
        await refused.get_by_role("button", name="Retry").click()
        await expect(page.locator("article.msg[data-pending=failed]")).to_have_count(1)
        await expect(held).to_have_count(2)
        assert await history(server, thread_id) == ["Refusal drill", "m1", "m2"]

        # A reload keeps the refusal and the order (the queue is in IndexedDB).
        await page.reload()
        await wait_connected(page)
        await expect(page.locator("article.msg[data-pending=failed]")).to_have_count(1)
        await expect(held).to_have_count(2)

        # Delete it: the queue goes on, in order.
        await page.locator("article.msg[data-pending=failed]").get_by_role("button", name="Delete").click()
        await expect(page.locator("article.msg[data-pending]")).to_have_count(0)
        await expect(page.locator("article.msg[data-message-id]")).to_have_count(5)
        assert await history(server, thread_id) == ["Refusal drill", "m1", "m2", "m4", "m5"]
        assert await shown_texts(page) == ["Refusal drill", "m1", "m2", "m4", "m5"]
        await context.close()
    finally:
        server.stop()


async def test_two_tabs_queue_into_one_thread_and_it_arrives_in_the_order_written(
    server: Server, browser: Browser
) -> None:
    context, first, thread_id = await a_thread_ready_for_offline(browser, server, "Two tabs")
    second = (await new_page(context)).page
    await second.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(second)

    await context.set_offline(True)
    order = [(first, "a1"), (second, "b1"), (first, "a2"), (second, "b2"), (first, "a3")]
    for tab, text in order:
        await write(tab, text)
    # Each tab shows every queued message, whichever tab wrote it, in the order written.
    written = [text for _, text in order]
    for tab in (first, second):
        pending = tab.locator("article.msg[data-pending]")
        await expect(pending).to_have_count(5)
        assert [t.strip() for t in await pending.locator(".body").all_inner_texts()] == written

    await context.set_offline(False)
    for tab in (first, second):
        await wait_connected(tab)
        await expect(tab.locator("article.msg[data-message-id]")).to_have_count(6)
        await expect(tab.locator("article.msg[data-pending]")).to_have_count(0)
        assert await shown_texts(tab) == ["Two tabs", *written]
    assert await history(server, thread_id) == ["Two tabs", *written]
    await context.close()


# --- reading offline ------------------------------------------------------------------------------


# This device's copy of a thread (cache.js), or null. (It must not create the database: the app's
# store would then never be made in it.)
CACHED_THREAD = """(id) => new Promise((resolve) => {
  const open = indexedDB.open("spacechat-cache");
  open.onupgradeneeded = () => open.transaction.abort();
  open.onsuccess = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains("items")) return resolve(null);
    const get = db.transaction("items").objectStore("items").get("t:" + id);
    get.onsuccess = () => (db.close(), resolve(get.result || null));
    get.onerror = () => resolve(null);
  };
  open.onerror = () => resolve(null);
})"""


async def test_a_thread_read_online_opens_offline_after_a_reload_and_catches_up(
    server: Server, browser: Browser
) -> None:
    channel_id, thread_id = await open_thread(server, "general", "Launch checklist")
    for text in ("fuel loaded", "crew aboard", "weather is fine"):
        await post(server, f"/v1/threads/{thread_id}/messages", {"text": text})
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/c/{channel_id}")
    await wait_connected(page)
    await service_worker_ready(page)
    await page.get_by_role("link", name="Launch checklist").click()
    await expect(page.locator("article.msg[data-message-id]")).to_have_count(4)
    saved = await wait_for_js(
        page, f"({CACHED_THREAD})('{thread_id}').then((c) => c && c.messages.length === 4 ? c : null)"
    )
    assert saved["thread"]["title"] == "Launch checklist"

    await context.set_offline(True)
    # The conversation goes on while this device is offline.
    for text in ("countdown started", "lift-off"):
        await post(server, f"/v1/threads/{thread_id}/messages", {"text": text})

    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    await page.reload()
    # Offline after a reload: title, channel and history, marked possibly stale; no error.
    await expect(page.get_by_role("heading", name="Launch checklist", level=1)).to_be_visible()
    await expect(page.get_by_role("link", name="Back to #general")).to_be_visible()
    await expect(page.locator("article.msg[data-message-id]")).to_have_count(4)
    stale = page.locator(".stale-note")
    await expect(stale).to_contain_text("Offline: showing what this device saved")
    await expect(page.locator(".error-note")).to_have_count(0)
    await expect(page.get_by_label("Reply in this thread")).to_be_visible()
    # A view not on the first screen (its module loads when first opened) opens offline too: the
    # service worker precached every module.
    await page.get_by_role("link", name="Settings and devices").click()
    await expect(page.locator(".offline-usage")).to_contain_text("Kept now:")
    await page.go_back()
    await expect(page.get_by_role("heading", name="Launch checklist", level=1)).to_be_visible()
    # Its channel was opened online too: its list of threads opens offline the same way.
    await page.get_by_role("link", name="Back to #general").click()
    await expect(page.get_by_role("feed", name="Threads in #general").locator("article")).to_have_count(1)
    await expect(stale).to_contain_text("Offline: showing what this device saved")
    await page.get_by_role("link", name="Launch checklist").click()
    await expect(page.locator("article.msg[data-message-id]")).to_have_count(4)

    tried_offline = len(requests)  # the page tried the server first, and could not reach it
    await context.set_offline(False)
    await wait_connected(page)
    texts = ["Launch checklist", "fuel loaded", "crew aboard", "weather is fine", "countdown started", "lift-off"]
    await expect(page.locator("article.msg[data-message-id]")).to_have_count(6)
    await expect(stale).to_have_count(0)
    assert await shown_texts(page) == texts  # no gap, no duplicate, in order

    # It caught up from the realtime log, resumed after the copy's seq, not by refetching.
    online = requests[tried_offline:]
    streams = [r for r in online if r.url.endswith("/v1/realtime/sse")]
    resumed = [r.headers["last-event-id"] for r in streams if "last-event-id" in r.headers]
    assert resumed and int(resumed[-1]) == saved["seq"], [r.headers for r in streams]
    assert not [r.url for r in online if "/history" in r.url], "the thread was refetched"

    # Settings says what is kept; signing out clears it.
    await page.get_by_role("link", name="Settings and devices").click()
    usage = page.locator(".offline-usage")
    await expect(usage).to_have_attribute("data-threads", "1")
    await expect(usage).to_contain_text("Kept now: 1 thread and 1 channel")
    await page.get_by_role("button", name="Sign out", exact=True).first.click()
    await expect(page.get_by_role("heading", name="Sign in to Spacechat")).to_be_visible()
    assert await page.evaluate(CACHED_THREAD, thread_id) is None
    await context.close()


async def test_a_thread_not_kept_opens_offline_with_what_it_has(server: Server, browser: Browser) -> None:
    """With nothing kept (the limit at 0), a thread reloaded offline says the server cannot be
    reached; its Metrics button names no panel that is not there (it once did: invalid ARIA)."""
    _, thread_id = await open_thread(server, "general", "Not kept")
    context = await new_context(browser)
    await sign_in(context, server)
    await context.add_init_script(
        "localStorage.setItem('spacechat:offline-limit', '0'); localStorage.setItem('spacechat:metrics-open', '1')"
    )
    page = await open_offline_ready(context, server, thread_id)
    await expect(page.locator("#thread-metrics")).to_be_visible()
    await context.set_offline(True)
    await page.reload()
    await expect(page.locator(".error-note")).to_contain_text("the server cannot be reached")
    metrics = page.get_by_role("button", name="Metrics")
    await expect(metrics).to_have_attribute("aria-expanded", "false")
    assert await metrics.get_attribute("aria-controls") is None
    assert await page.evaluate(CACHED_THREAD, thread_id) is None
    await context.set_offline(False)
    await wait_connected(page)
    await expect(page.get_by_role("heading", name="Not kept", level=1)).to_be_visible()
    await expect(page.locator("#thread-metrics")).to_be_visible()
    await expect(metrics).to_have_attribute("aria-controls", "thread-metrics")
    await context.close()


async def test_new_threads_queued_offline_in_a_channel_arrive_in_order_each_once(
    server: Server, browser: Browser
) -> None:
    """The channel's own queue (`c:` in outbox.js): new threads written offline are started in the
    order written, across a reload, each once."""
    channel = (await post(server, "/v1/channels", {"name": "ideas"}))["channel"]
    context = await new_context(browser)
    await sign_in(context, server)
    page = (await new_page(context)).page
    await page.goto(f"{server.url}/c/{channel['id']}")
    await wait_connected(page)
    await service_worker_ready(page)
    await expect(page.get_by_text("No threads yet. Start one below.")).to_be_visible()

    await context.set_offline(True)
    titles = [f"idea {i}" for i in range(1, 5)]
    box = page.get_by_label("Start a new thread in #ideas")
    pending = page.locator("article.thread-row[data-pending]")
    for title in titles:
        await box.fill(title)
        await box.press("Enter")
        await expect(pending.filter(has_text=title)).to_have_count(1)
    await page.reload()  # offline: the queue comes back from IndexedDB, in the order written
    await expect(pending).to_have_count(4)
    assert [t.strip() for t in await pending.locator(".thread-title").all_inner_texts()] == titles

    await context.set_offline(False)
    await wait_connected(page)
    await expect(pending).to_have_count(0)
    feed = page.get_by_role("feed", name="Threads in #ideas").locator("article")
    await expect(feed).to_have_count(4)
    async with server.client() as client:
        threads = (await client.get(f"/v1/channels/{channel['id']}/threads")).json()["threads"]
    started = [t["title"] for t in sorted(threads, key=lambda t: t["last_seq"])]
    assert started == titles, "each once, in the order written"
    await context.close()


async def test_the_cache_keeps_the_newest_threads_with_their_cards_and_attachments(
    server: Server, browser: Browser
) -> None:
    """With room for one thread, opening a second evicts the first (least recently opened), and
    Settings counts what is kept; the kept thread opens offline with its card and attachment."""
    _, older = await open_thread(server, "general", "Older thread")
    _, newer = await open_thread(server, "general", "Newer thread")
    async with server.client() as client:
        uploaded = await client.post(
            "/v1/uploads",
            params={"filename": "notes.txt"},
            content=b"remember the milk",
            headers={"Content-Type": "text/plain"},
        )
        assert uploaded.status_code == 201, uploaded.text
    card = [
        {"type": "section", "text": "**Deploy api v2.3?** It carries 3 migrations."},
        {"type": "fields", "fields": [{"label": "Service", "value": "api"}]},
    ]
    await post(
        server,
        f"/v1/threads/{newer}/messages",
        {"text": "the plan", "blocks": card, "attachments": [uploaded.json()["attachment"]["id"]]},
    )
    context = await new_context(browser)
    await sign_in(context, server)
    await context.add_init_script("localStorage.setItem('spacechat:offline-limit', '1')")
    page = await open_offline_ready(context, server, older)
    await wait_for_js(page, f"({CACHED_THREAD})('{older}')")
    await page.goto(f"{server.url}/t/{newer}")
    await expect(page.locator("article.msg .blocks .block-section")).to_contain_text("Deploy api v2.3?")
    await wait_for_js(page, f"({CACHED_THREAD})('{newer}').then((c) => c && c.messages.length === 2 ? c : null)")
    # The older copy went when the newer one came (one thread kept).
    await wait_for_js(page, f"({CACHED_THREAD})('{older}').then((c) => c === null)")
    await page.get_by_role("link", name="Settings and devices").click()
    usage = page.locator(".offline-usage")
    await expect(usage).to_have_attribute("data-threads", "1")
    await expect(usage).to_contain_text("Kept now: 1 thread and")

    await context.set_offline(True)
    await page.goto(f"{server.url}/t/{newer}")
    await expect(page.locator(".stale-note")).to_contain_text("Offline: showing what this device saved")
    await expect(page.get_by_role("heading", name="Newer thread", level=1)).to_be_visible()
    kept = page.locator("article.msg[data-message-id]", has_text="the plan")
    await expect(kept.locator(".blocks .block-section strong")).to_have_text("Deploy api v2.3?")
    await expect(kept.locator(".block-fields dt")).to_have_text(["Service"])
    await expect(kept.locator(".attachment.file a")).to_have_attribute("download", "notes.txt")
    # The evicted one is not kept: offline it cannot be shown.
    await page.goto(f"{server.url}/t/{older}")
    await expect(page.locator(".error-note")).to_contain_text("the server cannot be reached")
    await context.set_offline(False)
    await wait_connected(page)
    await expect(page.get_by_role("heading", name="Older thread", level=1)).to_be_visible()
    await context.close()
