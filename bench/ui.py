"""Web UI: a thread of 100,000 messages in real Chromium (issue 4).

Starts a fresh `spacechat serve` (no agent runtime; CPU 0), seeds one thread with `--messages`
messages (default 100,000: a mix of one-liners, paragraphs, lists and code blocks, so rows have
different heights) through the API with 50 concurrent senders, then drives Debian's Chromium
(headless, Playwright) signed in as the owner, at 1280x800:

- open time: navigation to `/t/<thread>` until its first rows are rendered (the app marks
  `spacechat:thread-rendered` one animation frame after the rows are in the DOM), cold (a new tab,
  app files from the service worker's cache) and in-app (a click in the channel's thread list);
- deep link: `/t/<thread>/m/<oldest message>` until rendered;
- scroll frames: requestAnimationFrame deltas while the page scrolls the thread up by a fixed
  step every frame (a steady read and a fast fling), loading older pages of 200 as it goes; p50,
  p95, max, and dropped frames (a delta over 16.7 ms × 1.5, a missed vsync at 60 Hz);
- send-to-render: Enter in the message box until the message is in the list (optimistic, pending),
  and until the server's copy replaces it (confirmed), in the 100,000-message thread;
- local interactions: a click on a channel in the sidebar until the next frame is painted, and
  keyboard focus moving between messages;
- first paint (issue 13): navigation to `/c/<channel>` until the browser's first contentful paint
  and until the app has painted the channel with its threads (`spacechat:channel-rendered`),
  cold (a new browser context: empty HTTP cache, no service worker) and warm (the same context
  again, with its HTTP cache and service worker), with the requests and bytes it took.
- offline (issue 18): the thread reloaded with no connection, from this device's cache, until its
  rows are rendered; and `--queued` sends written offline, from the connection's return until the
  last is acknowledged (one at a time, in order: the queue's drain rate).

    python bench/ui.py                     # 100,000 messages
    python bench/ui.py --messages 20000 --scroll-seconds 5
    python bench/ui.py --messages 100 --first-paint-only   # first paint alone, in a minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from harness import (
    OWNER,
    HTTPConnection,
    Server,
    add_server_options,
    bench_config,
    describe_source,
    general_channel,
    log,
    machine_description,
    median,
    new_thread,
    percentile,
    print_table,
    raise_fd_limit,
    wait_for_idle,
)
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
FRAME_MS = 1000 / 60
DROPPED_MS = FRAME_MS * 1.5

TEMPLATES = [
    "ok {i}",
    "Message {i}: the deploy went out at 14:02 and the error rate is back to baseline.",
    "Message {i}. " + "A longer paragraph that wraps over several lines in the message list, " * 4,
    "Checklist {i}:\n- [x] migrate the store\n- [ ] update the **runbook**\n- [ ] tell `#ops`",
    "Snippet {i}:\n```python\ndef handler(event):\n    return {{'status': 'ok', 'n': {i}}}\n```",
    "@spacebot summarise message {i} please, with *emphasis* and a [link](https://example.com/{i})",
]


async def seed(server: Server, count: int, concurrency: int = 50) -> tuple[str, str, float]:
    """One thread of `count` messages (its root included); returns (channel, thread, seconds)."""
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    channel_id = await general_channel(conn)
    thread_id, _ = await new_thread(conn, channel_id, "Bench: a thread of many messages")
    conn.close()
    conns = [await HTTPConnection.open(server.host, server.port, server.token) for _ in range(concurrency)]
    path = f"/v1/threads/{thread_id}/messages"
    next_index = 1
    started = time.perf_counter()

    async def worker(conn: HTTPConnection) -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            text = TEMPLATES[i % len(TEMPLATES)].format(i=i)
            await conn.json("POST", path, {"text": text}, expect=201)
            if i % 20000 == 0:
                log(f"seeded {i} messages")

    try:
        await asyncio.gather(*(worker(conn) for conn in conns))
    finally:
        for conn in conns:
            conn.close()
    return channel_id, thread_id, time.perf_counter() - started


async def signed_in_context(browser: Browser, url: str) -> BrowserContext:
    context = await browser.new_context(viewport=VIEWPORT)
    response = await context.request.post(
        f"{url}/v1/auth/login", data={"email": OWNER["email"], "password": OWNER["password"], "device_name": "bench"}
    )
    assert response.status == 200, await response.text()
    return context


async def wait_js(page: Page, expression: str, timeout: float = 60) -> Any:
    """Poll an expression (evaluate() is not subject to the page's CSP, wait_for_function is)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        await asyncio.sleep(0.01)


async def open_cold(context: BrowserContext, url: str, thread_id: str, suffix: str = "") -> float:
    """A new tab straight to the thread: navigation start to rows rendered, ms."""
    page = await context.new_page()
    await page.goto(f"{url}/t/{thread_id}{suffix}")
    mark = await wait_js(
        page,
        "(() => { const m = performance.getEntriesByName('spacechat:thread-rendered');"
        " return m.length && m[0].startTime; })()",
    )
    await page.close()
    return float(mark)


async def open_in_app(context: BrowserContext, url: str, channel_id: str, thread_id: str) -> float:
    """From the channel's thread list, a click on the thread until its rows are rendered, ms."""
    page = await context.new_page()
    await page.goto(f"{url}/c/{channel_id}")
    link = page.locator(f"article[data-thread-id='{thread_id}'] a")
    await link.wait_for()
    await page.evaluate(
        "window.spacechat.threadOpened = null; document.addEventListener('click', () => {"
        " window.__clickAt = performance.now(); }, {capture: true, once: true})"
    )
    await link.click()
    await wait_js(page, "window.spacechat.threadOpened")
    elapsed = await page.evaluate(
        "performance.getEntriesByName('spacechat:thread-rendered').at(-1).startTime - window.__clickAt"
    )
    await page.close()
    return float(elapsed)


SCROLL_SCRIPT = """
async ([step, seconds]) => {
  const scroller = document.querySelector('.thread-view .scroller');
  const deltas = [];
  const longTasks = [];
  const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => longTasks.push(e.duration)));
  observer.observe({type: 'longtask'});
  let last = performance.now();
  const end = last + seconds * 1000;
  const startTop = scroller.scrollTop;
  let travelled = 0;
  await new Promise((resolve) => {
    function frame(now) {
      deltas.push(now - last);
      last = now;
      const before = scroller.scrollTop;
      scroller.scrollTop = Math.max(0, before - step);
      travelled += before - scroller.scrollTop;
      if (now < end) requestAnimationFrame(frame); else resolve();
    }
    requestAnimationFrame(frame);
  });
  observer.disconnect();
  const seqs = [...document.querySelectorAll('article.msg')].map((a) => Number(a.dataset.seq));
  return {deltas: deltas.slice(1), travelled, longTasks, loaded: document.querySelectorAll('article.msg').length,
          oldestSeq: Math.min(...seqs), heap: performance.memory ? performance.memory.usedJSHeapSize : null};
}
"""


async def scroll(context: BrowserContext, url: str, thread_id: str, step: int, seconds: float) -> dict[str, Any]:
    page = await context.new_page()
    await page.goto(f"{url}/t/{thread_id}")
    await wait_js(page, "window.spacechat.threadOpened")
    await page.wait_for_timeout(300)
    result = dict(await page.evaluate(SCROLL_SCRIPT, [step, seconds]))
    await page.close()
    return result


SEND_WATCH = """
(text) => new Promise((resolve) => {
  const t = {};
  const box = document.querySelector('.composer-input');
  box.addEventListener('keydown', (e) => { if (e.key === 'Enter') t.enter = performance.now(); },
                      {capture: true, once: true});
  const find = (selector) => [...document.querySelectorAll(selector)].some((a) => a.textContent.includes(text));
  const observer = new MutationObserver(() => {
    if (!t.pending && find('article.msg[data-pending]')) t.pending = performance.now();
    if (!t.confirmed && find('article.msg[data-message-id]')) t.confirmed = performance.now();
    if (t.pending && t.confirmed) { observer.disconnect(); resolve(t); }
  });
  observer.observe(document.querySelector('.thread-view'), {subtree: true, childList: true, attributes: true});
  window.__sendDone = null;
})
"""


async def sends(context: BrowserContext, url: str, thread_id: str, count: int) -> tuple[list[float], list[float]]:
    page = await context.new_page()
    await page.goto(f"{url}/t/{thread_id}")
    await wait_js(page, "window.spacechat.threadOpened")
    await page.wait_for_selector("html[data-connection=connected]", state="attached")
    box = page.locator(".composer-input")
    pending, confirmed = [], []
    for i in range(count):
        text = f"bench send {i} {time.time_ns()}"
        await box.fill(text)
        watch = asyncio.ensure_future(page.evaluate(SEND_WATCH, text))
        await page.wait_for_timeout(50)  # the watcher is installed
        await box.press("Enter")
        t = await asyncio.wait_for(watch, 30)
        # A confirmed row can replace the pending one before a mutation shows the pending one.
        pending.append((t.get("pending") or t["confirmed"]) - t["enter"])
        confirmed.append(t["confirmed"] - t["enter"])
        await page.wait_for_timeout(100)
    await page.close()
    return pending, confirmed


FIRST_PAINT = """
() => {
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const shown = performance.getEntriesByName('spacechat:channel-rendered')[0];
  const files = performance.getEntriesByType('resource').filter((r) => !new URL(r.name).pathname.startsWith('/v1/'));
  return fcp && shown && {fcp: fcp.startTime, app: shown.startTime, requests: files.length,
    network: files.filter((r) => r.transferSize > 0).length,
    bytes: files.reduce((sum, r) => sum + (r.transferSize || 0), 0)};
}
"""


async def first_paint(browser: Browser, url: str, channel_id: str, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Cold: a fresh context each round; warm: a second tab of it once its service worker holds the app."""
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    for _ in range(rounds):
        context = await signed_in_context(browser, url)
        for into, settle in ((cold, True), (warm, False)):
            page = await context.new_page()
            await page.goto(f"{url}/c/{channel_id}")
            into.append(dict(await wait_js(page, FIRST_PAINT)))
            if settle:  # the service worker installs and caches the app before the warm visit
                await wait_js(page, "navigator.serviceWorker.controller !== null")
                await wait_js(page, "caches.has('spacechat-shell-v1')")
            await page.close()
        await context.close()
    return {"cold": cold, "warm": warm}


CLICK_TO_PAINT = """
async (selector) => {
  const target = document.querySelector(selector);
  const start = performance.now();
  target.click();
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return performance.now() - start;
}
"""

KEY_TO_FOCUS = """
async () => {
  const feed = document.querySelector('.thread-view .scroller');
  const rows = [...feed.querySelectorAll('article.msg')];
  rows[rows.length - 1].focus();
  const start = performance.now();
  rows[rows.length - 1].dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowUp', bubbles: true}));
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return [performance.now() - start, document.activeElement !== rows[rows.length - 1]];
}
"""


async def interactions(context: BrowserContext, url: str, thread_id: str, rounds: int = 10) -> dict[str, list[float]]:
    page = await context.new_page()
    await page.goto(f"{url}/t/{thread_id}")
    await wait_js(page, "window.spacechat.threadOpened")
    channel_switch, back_to_thread, key_focus = [], [], []
    for _ in range(rounds):
        channel_switch.append(float(await page.evaluate(CLICK_TO_PAINT, "a[data-channel-name=ops]")))
        await page.wait_for_timeout(100)
        channel_switch.append(float(await page.evaluate(CLICK_TO_PAINT, "a[data-channel-name=general]")))
        await page.wait_for_selector(f"article[data-thread-id='{thread_id}'] a")
        await page.wait_for_timeout(100)
        back_to_thread.append(float(await page.evaluate(CLICK_TO_PAINT, f"article[data-thread-id='{thread_id}'] a")))
        await page.wait_for_selector("article.msg")
        await page.wait_for_timeout(100)
        elapsed, moved = await page.evaluate(KEY_TO_FOCUS)
        assert moved, "focus did not move"
        key_focus.append(float(elapsed))
        await page.wait_for_timeout(100)
    await page.close()
    return {
        "channel switch (click to paint)": channel_switch,
        "open a cached thread (click to paint)": back_to_thread,
        "↑ moves focus (key to paint)": key_focus,
    }


async def seed_inbox(server: Server, threads: int, concurrency: int = 20) -> None:
    """`threads` threads the owner started (so all are in their inbox), each with a reply."""
    conns = [await HTTPConnection.open(server.host, server.port, server.token) for _ in range(concurrency)]
    channel_id = await general_channel(conns[0])
    left = list(range(threads))

    async def worker(conn: HTTPConnection) -> None:
        while left:
            i = left.pop()
            made = await conn.json(
                "POST", f"/v1/channels/{channel_id}/messages", {"text": f"inbox thread {i}"}, expect=201
            )
            await conn.json("POST", f"/v1/threads/{made['thread']['id']}/messages", {"text": f"reply {i}"}, expect=201)

    try:
        await asyncio.gather(*(worker(conn) for conn in conns))
    finally:
        for conn in conns:
            conn.close()


async def open_inbox(context: BrowserContext, url: str, channel_id: str, rounds: int) -> list[float]:
    """From a channel, a click on Inbox until its first page of rows is rendered, ms."""
    page = await context.new_page()
    await page.goto(f"{url}/c/{channel_id}")
    await wait_js(page, "document.querySelector('a.nav-link[href=\"/inbox\"]') !== null")
    times = []
    for _ in range(rounds):
        await page.evaluate(
            "window.spacechat.inboxOpened = null; window.__t0 = performance.now();"
            " document.querySelector('a.nav-link[href=\"/inbox\"]').click()"
        )
        opened = await wait_js(page, "window.spacechat.inboxOpened")
        times.append(float(opened["at"]) - float(await page.evaluate("window.__t0")))
        await page.evaluate(f"document.querySelector('a[data-channel-id=\"{channel_id}\"]').click()")
        await wait_js(page, "document.querySelector('.channel-view') !== null")
    await page.close()
    return times


RENDERED_AT = (
    "(() => { const m = performance.getEntriesByName('spacechat:thread-rendered');"
    " return m.length && m[0].startTime; })()"
)
# How many of a store's entries IndexedDB holds (without creating the database).
STORED = """(([name, expected]) => new Promise((resolve) => {
  const open = indexedDB.open(name);
  open.onupgradeneeded = () => open.transaction.abort();
  open.onerror = () => resolve(expected === 0);
  open.onsuccess = () => {
    const db = open.result;
    const store = db.objectStoreNames[0];
    if (!store) return resolve(expected === 0);
    const count = db.transaction(store).objectStore(store).count();
    count.onsuccess = () => (db.close(), resolve(expected < 0 ? count.result > 0 : count.result === expected));
  };
}))"""


async def offline(context: BrowserContext, url: str, thread_id: str, queued: int) -> dict[str, float]:
    page = await context.new_page()
    await page.goto(f"{url}/t/{thread_id}")
    await wait_js(page, "window.spacechat.threadOpened")
    await page.wait_for_selector("html[data-connection=connected]", state="attached")
    await wait_js(page, STORED + '(["spacechat-cache", -1])', timeout=30)  # kept a moment after it opened
    await context.set_offline(True)
    await page.reload()
    opened = float(await wait_js(page, RENDERED_AT))
    box = page.locator(".composer-input")
    for i in range(queued):
        await box.fill(f"queued offline {i}")
        await box.press("Enter")
    await wait_js(page, "document.querySelector('.composer-input').value === ''")
    started = time.perf_counter()
    await context.set_offline(False)
    await wait_js(page, STORED + '(["spacechat-outbox", 0])')
    drained = time.perf_counter() - started
    await page.close()
    return {"open_offline_ms": opened, "queued": queued, "drain_seconds": drained}


def frame_stats(deltas: list[float]) -> list[str]:
    dropped = sum(1 for d in deltas if d > DROPPED_MS)
    return [
        f"{percentile(deltas, 50):.1f}",
        f"{percentile(deltas, 95):.1f}",
        f"{max(deltas):.1f}",
        f"{dropped} / {len(deltas)} ({dropped / max(len(deltas), 1):.1%})",
    ]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = Server(bench_config(), src=args.src).start()
    results: dict[str, Any] = {"messages": args.messages}
    if args.first_paint_only:
        try:
            url = f"http://{server.host}:{server.port}"
            conn = await HTTPConnection.open(server.host, server.port, server.token)
            channel_id = await general_channel(conn)
            conn.close()
            wait_for_idle(max_busy=0.2, timeout=60)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                results["first_paint"] = await first_paint(browser, url, channel_id, args.rounds)
                await browser.close()
        finally:
            server.stop()
        return results
    try:
        url = f"http://{server.host}:{server.port}"
        log(f"seeding a thread of {args.messages} messages")
        channel_id, thread_id, seconds = await seed(server, args.messages)
        results["seed_seconds"] = seconds
        log(f"seeded in {seconds:.0f} s ({args.messages / seconds:.0f} messages/s)")
        wait_for_idle(max_busy=0.2, timeout=60)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            context = await signed_in_context(browser, url)
            warm = await context.new_page()  # installs the service worker and warms the caches
            await warm.goto(f"{url}/c/{channel_id}")
            await wait_js(warm, "navigator.serviceWorker.controller !== null")
            await warm.close()
            results["open_cold_ms"] = [await open_cold(context, url, thread_id) for _ in range(args.rounds)]
            results["open_in_app_ms"] = [
                await open_in_app(context, url, channel_id, thread_id) for _ in range(args.rounds)
            ]
            async with httpx_like(server) as first:
                results["deep_link_ms"] = [
                    await open_cold(context, url, thread_id, f"/m/{first}") for _ in range(args.rounds)
                ]
            results["scroll"] = {}
            for name, step in (
                ("read (60 px/frame)", 60),
                ("fling (240 px/frame)", 240),
                ("drag the scrollbar (1,000 px/frame)", 1000),
            ):
                results["scroll"][name] = await scroll(context, url, thread_id, step, args.scroll_seconds)
            results["send_pending_ms"], results["send_confirmed_ms"] = await sends(context, url, thread_id, args.sends)
            results["interactions_ms"] = await interactions(context, url, thread_id)
            log(f"seeding {args.inbox_threads} threads for the inbox")
            await seed_inbox(server, args.inbox_threads)
            results["inbox_threads"] = args.inbox_threads
            results["inbox_open_ms"] = await open_inbox(context, url, channel_id, args.rounds)
            results["first_paint"] = await first_paint(browser, url, channel_id, args.rounds)
            results["offline"] = await offline(context, url, thread_id, args.queued)
            await browser.close()
    finally:
        server.stop()
    return results


class httpx_like:
    """The id of the thread's oldest message (its root), over the raw client."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def __aenter__(self) -> str:
        conn = await HTTPConnection.open(self.server.host, self.server.port, self.server.token)
        try:
            channel_id = await general_channel(conn)
            threads = await conn.json("GET", f"/v1/channels/{channel_id}/threads?limit=1")
            return str(threads["threads"][0]["root_message_id"])
        finally:
            conn.close()

    async def __aexit__(self, *exc: object) -> None:
        return None


def report_first_paint(results: dict[str, Any]) -> None:
    rows = []
    for kind, runs in results["first_paint"].items():
        rows.append(
            [
                kind,
                f"{median([r['fcp'] for r in runs]):.0f}",
                f"{median([r['app'] for r in runs]):.0f}",
                f"{max(r['app'] for r in runs):.0f}",
                f"{median([r['network'] for r in runs]):.0f} / {median([r['requests'] for r in runs]):.0f}",
                f"{median([r['bytes'] for r in runs]) / 1024:.0f} KiB",
            ]
        )
    print_table(
        f"First paint of /c/<channel> (median of {len(results['first_paint']['cold'])}; target: app <= 600 ms cold, "
        "<= 300 ms warm)",
        ["visit", "first contentful paint ms", "app painted ms", "app max ms", "from network / files", "transferred"],
        rows,
    )


def report(results: dict[str, Any]) -> None:
    if "open_cold_ms" not in results:
        report_first_paint(results)
        return

    def ms(values: list[float]) -> str:
        return f"{median(values):.0f}"

    print_table(
        f"Opening a thread of {results['messages']:,} messages (median of {len(results['open_cold_ms'])})",
        ["what", "median ms", "max ms"],
        [
            ["new tab → first rows rendered", ms(results["open_cold_ms"]), f"{max(results['open_cold_ms']):.0f}"],
            [
                "click in the thread list → rows rendered",
                ms(results["open_in_app_ms"]),
                f"{max(results['open_in_app_ms']):.0f}",
            ],
            [
                "deep link to the oldest message → rendered",
                ms(results["deep_link_ms"]),
                f"{max(results['deep_link_ms']):.0f}",
            ],
        ],
    )
    rows = []
    for name, data in results["scroll"].items():
        reached = results["messages"] - data["oldestSeq"] + 1
        rows.append(
            [
                name,
                *frame_stats(data["deltas"]),
                str(len(data["longTasks"])),
                f"{data['travelled'] / 1000:.0f}k px",
                f"{reached:,}",
            ]
        )
    print_table(
        "Scrolling up (requestAnimationFrame deltas, ms; dropped = over 25 ms; long tasks = over 50 ms)",
        ["scroll", "p50", "p95", "max", "dropped frames", "long tasks", "distance", "messages scrolled through"],
        rows,
    )
    pending, confirmed = results["send_pending_ms"], results["send_confirmed_ms"]
    print_table(
        f"Send to render in the {results['messages']:,}-message thread ({len(pending)} sends)",
        ["what", "p50 ms", "p95 ms", "max ms"],
        [
            [
                "Enter → shown (pending)",
                f"{percentile(pending, 50):.1f}",
                f"{percentile(pending, 95):.1f}",
                f"{max(pending):.1f}",
            ],
            [
                "Enter → confirmed by the server",
                f"{percentile(confirmed, 50):.1f}",
                f"{percentile(confirmed, 95):.1f}",
                f"{max(confirmed):.1f}",
            ],
        ],
    )
    inbox = results["inbox_open_ms"]
    print_table(
        f"Opening the inbox with {results['inbox_threads']:,} threads (a click on Inbox → first 100 rows rendered)",
        ["what", "median ms", "max ms"],
        [["click → rendered", f"{median(inbox):.0f}", f"{max(inbox):.0f}"]],
    )
    print_table(
        "Local interactions (ms)",
        ["what", "p50", "p95", "max"],
        [
            [name, f"{percentile(v, 50):.1f}", f"{percentile(v, 95):.1f}", f"{max(v):.1f}"]
            for name, v in results["interactions_ms"].items()
        ],
    )
    report_first_paint(results)
    off = results["offline"]
    print_table(
        "Offline",
        ["what", "figure"],
        [
            ["reload offline → rows rendered (from this device's cache)", f"{off['open_offline_ms']:.0f} ms"],
            [
                f"{off['queued']} sends queued offline → all acknowledged, in order",
                f"{off['drain_seconds']:.2f} s ({off['queued'] / off['drain_seconds']:.0f} messages/s)",
            ],
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="opens of each kind")
    parser.add_argument("--sends", type=int, default=20)
    parser.add_argument("--queued", type=int, default=50, help="sends queued offline, then drained")
    parser.add_argument("--scroll-seconds", type=float, default=8)
    parser.add_argument("--inbox-threads", type=int, default=1000, help="threads in the owner's inbox")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--first-paint-only", action="store_true", help="measure only the first paint (no seeding)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    add_server_options(parser)
    args = parser.parse_args()
    raise_fd_limit()
    print(f"ui: {machine_description()}; {describe_source(args.src)}; {time.strftime('%Y-%m-%d %H:%M')}")
    results = asyncio.run(run(args))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
