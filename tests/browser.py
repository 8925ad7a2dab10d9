"""Helpers for the web UI tests: real Chromium (Debian's) driven by Playwright's async API.

Each test gets its own browser context (cookies, storage and service worker of its own). A page
is watched for uncaught errors, console errors and CSP violations, which fail the test: the UI
must run under the strict CSP that spacechat_plugin/api/webui.py sends. Every page of a context
made here is also checked with axe-core after each navigation and at the end of the test
(tests/a11y.py): an accessibility violation fails the test too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from .a11y import INIT_SCRIPT as AXE_SCRIPT
from .a11y import ContextAudit, report
from .support import OWNER, Server

CHROMIUM = "/usr/bin/chromium"
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
TIMEOUT_MS = 20_000  # generous: the suite may share two cores with other work
expect.set_options(timeout=TIMEOUT_MS)

# Installed before any page script: collects CSP violations and calls to the dialogs an XSS
# payload would make, where the test can read them.
WATCH_SCRIPT = """
window.__violations = [];
window.__xss = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__violations.push({directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample});
});
for (const name of ['alert', 'confirm', 'prompt']) {
  window[name] = (...args) => { window.__xss.push([name, String(args[0])]); };
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def chromium(extra_args: list[str] | None = None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *(extra_args or [])])
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """A page and what went wrong in it."""

    page: Page
    errors: list[str] = field(default_factory=list)

    async def violations(self) -> list[Any]:
        return list(await self.page.evaluate("window.__violations || []"))

    async def assert_clean(self) -> None:
        assert not self.errors, self.errors
        assert await self.violations() == []
        audit = audit_of(self.page.context)
        if audit:
            await audit.settle()
            assert not audit.findings, audit.report()


async def new_page(context: BrowserContext) -> Watched:
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    watched = Watched(page)
    page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))

    def console(message: Any) -> None:
        # A failed fetch while the server is down or the context offline is expected there.
        if message.type == "error" and "Failed to load resource" not in message.text:
            watched.errors.append(f"console: {message.text}")

    page.on("console", console)
    return watched


# The accessibility audits of the running test's contexts (checked when a context is closed, and
# at the latest when the test's browser is closed: conftest.py).
AUDITS: list[ContextAudit] = []


def audit_of(context: BrowserContext) -> ContextAudit | None:
    return next((audit for audit in AUDITS if audit.context is context), None)


async def new_context(browser: Browser, **options: Any) -> BrowserContext:
    context = await browser.new_context(**options)
    await context.add_init_script(WATCH_SCRIPT)
    await context.add_init_script(AXE_SCRIPT)
    context.set_default_timeout(TIMEOUT_MS)
    audit = ContextAudit(context, "dark" if options.get("color_scheme") == "dark" else "light")
    AUDITS.append(audit)
    context.on("page", audit.watch)
    close = context.close

    async def close_after_the_audit(**kwargs: Any) -> None:
        """The end of the test for this context: its pages are checked in every scheme and width."""
        try:
            await audit.final()
        finally:
            await close(**kwargs)
        assert not audit.findings, audit.report()

    context.close = close_after_the_audit  # type: ignore[method-assign]
    return context


async def audit_remaining(browser: Browser, check: bool = True) -> str:
    """The end-of-test check of the contexts a test left open; the failure message, or ''.
    (`check=False` forgets them: the test failed already.)"""
    mine = [audit for audit in AUDITS if audit.context.browser is browser]
    for audit in mine:
        await audit.settle()  # no check left running when the browser closes
        if check and not audit.finished:
            with contextlib.suppress(Exception):  # a context the test closed by other means
                await audit.final()
    AUDITS[:] = [audit for audit in AUDITS if audit not in mine]
    return report([finding for audit in mine for finding in audit.findings.values()]) if check else ""


async def sign_in(
    context: BrowserContext, server: Server, email: str = OWNER["email"], password: str = OWNER["password"]
) -> None:
    """Sign the context in as a person would be after the login form (the session cookie)."""
    response = await context.request.post(
        f"{server.url}/v1/auth/login", data={"email": email, "password": password, "device_name": "tests"}
    )
    assert response.status == 200, await response.text()


async def wait_connected(page: Page) -> None:
    await page.wait_for_selector("html[data-connection=connected]", state="attached")


async def wait_for_js(page: Page, expression: str, timeout: float = TIMEOUT_MS / 1000) -> Any:
    """Poll a JavaScript expression until it is truthy. (Playwright's wait_for_function evaluates
    its predicate with eval, which the UI's CSP forbids; evaluate() is not subject to it.)"""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true in {timeout} s: {expression}")
        await asyncio.sleep(0.05)


async def service_worker_ready(page: Page) -> None:
    """Wait until the service worker controls the page and has cached the shell (so the app
    opens offline)."""
    await wait_for_js(page, "navigator.serviceWorker.controller !== null")
    await wait_for_js(page, "caches.has('spacechat-shell-v1')")


WEB_UI = Path(__file__).parent.parent / "web_ui"  # the bundled UI in this checkout


async def post(server: Server, path: str, body: dict[str, Any], status: int = 201) -> Any:
    async with server.client() as client:
        response = await client.post(path, json=body)
        assert response.status_code == status, response.text
        return response.json()


async def open_thread(server: Server, channel: str, text: str) -> tuple[str, str]:
    """Post a top-level message over the API; return (channel id, thread id)."""
    channel_id = server.channel_id(channel)
    answer = await post(server, f"/v1/channels/{channel_id}/messages", {"text": text})
    return channel_id, answer["thread"]["id"]


async def count_text(page: Page, text: str) -> int:
    """How many message rows show exactly this text."""
    return int(
        await page.evaluate(
            "(text) => [...document.querySelectorAll('article.msg .body')]"
            ".filter((b) => b.textContent.trim() === text).length",
            text,
        )
    )


# --- for the cards, tasks and operations tests (test_ui_cards.py, test_ui_ops.py) -----------------


async def sign_in_person(context: BrowserContext, server: Server, person: Any) -> None:
    """Sign the context in as an invited person (tests.support.invite)."""
    await sign_in(context, server, person.user["email"], person.password)


async def signed_in_page(browser: Browser, server: Server, person: Any = None, **options: Any) -> Watched:
    """A fresh context signed in (as the owner, or `person`), with a watched page."""
    context = await new_context(browser, **options)
    if person is None:
        await sign_in(context, server)
    else:
        await sign_in_person(context, server, person)
    return await new_page(context)


async def events_of(server: Server, after: int, event_type: str) -> list[dict[str, Any]]:
    """The logged events of one type after `after` (read off the loop: a test's own fake model
    may need it)."""
    from .support import events_after

    events = await asyncio.to_thread(events_after, server, after)
    return [e for e in events if e["event_type"] == event_type]


async def log_seq(server: Server) -> int:
    """Where the event log stands now."""
    async with server.client() as client:
        return int((await client.get("/v1/me")).json()["seq"])


async def wait_until_async(predicate: Any, timeout: float = TIMEOUT_MS / 1000, interval: float = 0.1) -> Any:
    """Await an async predicate until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
