"""Observability and operations in the web UI, in real Chromium (issue 6): a failure drill with the
embedded host (the model provider fails; health, an incident, a reconnect with a reason, a retry;
a member sees no operations), the thread panel's tokens and cost adding up during a stream, the
dashboard's usage chart, and the two-person rule's waiting operation. Each test runs its own
`spacechat serve`; the fake model runs in the test's own event loop, so nothing here blocks it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from .browser import TIMEOUT_MS, signed_in_page, wait_connected, wait_for_js
from .fake_openai import REPLY, FakeOpenAI, priced_agent_config
from .support import Server, invite, toml_config

pytestmark = pytest.mark.browser


class PausingModel(FakeOpenAI):
    """The fake model, pausing before it answers a tool's result: the turn is then half done,
    with one request's usage recorded and the reply still to stream."""

    pause = 4.0

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["messages"][-1]["role"] == "tool":
            await asyncio.sleep(self.pause)
        return await super().completions(request)


async def start_thread(page: Page, server: Server, text: str) -> None:
    await page.goto(f"{server.url}/c/{server.channel_id('spacebot')}")
    await wait_connected(page)
    box = page.get_by_label("Start a new thread in #spacebot")
    await box.fill(text)
    await box.press("Enter")
    # A new thread in an agent's channel opens by itself (issue 13).
    await expect(page.get_by_role("heading", name=text)).to_be_visible()


# --- the failure drill --------------------------------------------------------------------------------


async def test_failure_drill(tmp_path: Path, browser: Browser) -> None:
    model = await FakeOpenAI().start()
    model.fail_with = 503  # the provider's API is down
    server = Server(tmp_path / "data", priced_agent_config(model)).start()
    try:
        operator = invite(server, server.token, "operator", name="Opal Operator")
        member = invite(server, server.token, "member", name="Mo Member")
        watched = await signed_in_page(browser, server, operator, viewport={"width": 1400, "height": 1000})
        page = watched.page
        await start_thread(page, server, "hello, model?")
        thread_url = page.url

        # The reply fails, visibly, with Retry.
        failed = page.locator("article.msg[data-author-kind=agent][data-state=failed]")
        await expect(failed.locator("[data-chip=failed]")).to_be_visible(timeout=TIMEOUT_MS)
        await expect(failed.locator(".failure")).to_contain_text("503")
        await expect(failed.get_by_role("button", name="Retry")).to_be_visible()
        # Health changes: the sidebar says so, the thread's panel has the error with a hint.
        dashboard_link = page.locator("a.nav-link[data-health]")
        await expect(dashboard_link).to_have_attribute("data-health", "down")
        await expect(dashboard_link.get_by_role("img", name="Health: something is down")).to_be_visible()
        await page.get_by_role("button", name="Metrics").click()
        panel = page.get_by_role("region", name="Thread metrics")
        await panel.get_by_text("Errors (1)").click()
        await expect(panel.locator(".error-item .hint")).to_contain_text("failing on its side")

        # The dashboard shows the provider down; an incident is open.
        await page.get_by_role("link", name="Dashboard").click()
        provider = page.locator("tr[data-component='provider:local']")
        await expect(provider).to_have_attribute("data-status", "down")
        await expect(page.locator(".health .health-chip").first).to_have_text("down")
        await page.locator("a.nav-link[href='/incidents']").click()
        incident = page.locator("li.incident[data-source='provider:local']")
        await expect(incident).to_have_attribute("data-status", "triage")
        await expect(incident).to_contain_text("provider:local is down")
        await expect(page.locator("a.nav-link[data-open-incidents]")).to_have_attribute("data-open-incidents", "1")

        # The provider is back; the operator reconnects it, giving a reason.
        model.fail_with = None
        await page.get_by_role("link", name="Dashboard").click()
        await provider.get_by_role("button", name="Reconnect").click()
        dialog = page.get_by_role("dialog", name="Reconnect?")
        await expect(dialog).to_contain_text("local")
        await dialog.get_by_role("button", name="Reconnect").click()
        await expect(dialog.get_by_role("alert")).to_have_text("Please write at least 3 characters.")
        await dialog.get_by_label("Reason").fill("the provider is back")
        await dialog.get_by_role("button", name="Reconnect").click()
        await expect(provider.locator("[data-ops-result]")).to_have_attribute("data-ops-result", "ok")
        await expect(provider).to_have_attribute("data-status", "ok")
        await expect(dashboard_link).to_have_attribute("data-health", "ok")
        await expect(page.locator(".recoveries li").first).to_contain_text("reconnect local: ok")
        await page.locator("a.nav-link[href='/incidents']").click()
        await expect(incident).to_have_attribute("data-status", "resolved")
        await expect(incident).to_contain_text("resolved by the system")
        await expect(page.locator("a.nav-link[data-open-incidents]")).to_have_attribute("data-open-incidents", "0")

        # Retry: the new reply completes; the failed one says it was retried.
        await page.goto(thread_url)
        await wait_connected(page)
        await failed.get_by_role("button", name="Retry").click()
        completed = page.locator("article.msg[data-author-kind=agent][data-state=completed]")
        await expect(completed.locator(".body")).to_have_text(REPLY, timeout=TIMEOUT_MS)
        await expect(failed.locator(".failure")).to_contain_text("Retried.")

        async with server.client() as client:
            audit = (await client.get("/v1/audit", params={"action": "ops."})).json()["entries"]
        assert [(e["action"], e["actor"]["id"], e["details"]["reason"]) for e in audit] == [
            ("ops.reconnect", operator.id, "the provider is back")
        ]

        # A member sees the same thread and its metrics, but no operation, no dashboard.
        other = await signed_in_page(browser, server, member, viewport={"width": 1400, "height": 1000})
        their = other.page
        await their.goto(thread_url)
        await wait_connected(their)
        await expect(their.locator("article.msg[data-author-kind=agent][data-state=completed]")).to_have_count(1)
        await their.get_by_role("button", name="Metrics").click()
        their_panel = their.get_by_role("region", name="Thread metrics")
        await expect(their_panel.locator("[data-model]")).to_have_attribute("data-model", "local-model-7b")
        await expect(their.locator("button[data-ops]")).to_have_count(0)
        await expect(their.get_by_role("link", name="Dashboard")).to_have_count(0)
        await their.goto(f"{server.url}/c/{server.channel_id('spacebot')}")
        await expect(their.get_by_role("region", name="Channel metrics").locator(".usage-stat").first).to_be_visible()
        await expect(their.locator("button[data-ops]")).to_have_count(0)
        await their.goto(f"{server.url}/dashboard")
        await expect(
            their.get_by_text("You need the diagnostics:read permission to see the dashboard.")
        ).to_be_visible()
        # ... while the operator's channel panel offers them.
        await page.goto(f"{server.url}/c/{server.channel_id('spacebot')}")
        await expect(page.locator("button[data-ops=retry]")).to_be_visible()
        await expect(page.locator("button[data-ops=restart]")).to_be_visible()
        await expect(page.locator("button[data-ops=reconnect]")).to_be_visible()
        await expect(page.locator("button[data-ops=recover]")).to_have_count(0)  # ops:recover is for admins
        await watched.assert_clean()
        await other.assert_clean()
    finally:
        server.stop()
        await model.stop()


# --- tokens and cost live, the chart ------------------------------------------------------------------


WATCH_PANEL = """() => {
  window.__usage = [];
  const note = () => {
    const stat = document.querySelector('.metrics .usage-stat');
    const reply = [...document.querySelectorAll('article.msg[data-author-kind=agent]')].pop();
    if (!stat) return;
    const seen = {
      tokens: Number(stat.dataset.tokens), cost: Number(stat.dataset.cost), reply: reply ? reply.dataset.state : null,
    };
    const last = window.__usage[window.__usage.length - 1];
    if (!last || last.tokens !== seen.tokens) window.__usage.push(seen);
  };
  const all = {subtree: true, childList: true, attributes: true, characterData: true};
  new MutationObserver(note).observe(document.body, all);
  note();
}"""


async def test_metrics_add_up_during_a_stream_and_the_dashboard_charts_usage(tmp_path: Path, browser: Browser) -> None:
    model = await PausingModel().start()
    server = Server(tmp_path / "data", priced_agent_config(model)).start()
    try:
        watched = await signed_in_page(browser, server, viewport={"width": 1400, "height": 1000})
        page = watched.page
        await start_thread(page, server, "hello")
        first = page.locator("article.msg[data-author-kind=agent][data-state=completed]")
        await expect(first.locator(".body")).to_have_text(REPLY, timeout=TIMEOUT_MS)

        await page.get_by_role("button", name="Metrics").click()
        panel = page.get_by_role("region", name="Thread metrics")
        usage = panel.locator(".usage-stat")
        # One request: 20 input, 12 output, 100 cached = 132 tokens, $0.000094 at the configured prices.
        await expect(usage).to_have_attribute("data-tokens", "132")
        await expect(usage.locator(".cost")).to_have_text("$0.000094")
        serving = panel.locator("[data-model]")
        await expect(serving).to_have_attribute("data-model", "local-model-7b")
        await expect(serving).to_have_attribute("data-provider", "local")
        await expect(panel.locator("[data-agent-status]")).to_have_attribute("data-agent-status", "idle")

        # A turn with a tool: its first request's usage shows while the reply is still to come.
        await page.evaluate(WATCH_PANEL)
        box = page.get_by_label("Reply in this thread")
        await box.fill("what time is it?")
        await box.press("Enter")
        await expect(panel.locator("[data-agent-status]")).to_have_attribute("data-agent-status", "thinking")
        await expect(usage).to_have_attribute("data-tokens", "189", timeout=TIMEOUT_MS)
        await expect(page.locator("article.msg[data-author-kind=agent]").last).not_to_have_attribute(
            "data-state", "completed"
        )
        await expect(usage).to_have_attribute("data-tokens", "321", timeout=TIMEOUT_MS)
        await expect(page.locator("article.msg[data-author-kind=agent]").last).to_have_attribute(
            "data-state", "completed"
        )
        seen = await page.evaluate("window.__usage")
        assert [s["tokens"] for s in seen] == [132, 189, 321], seen
        assert seen[1]["reply"] in ("created", "streaming"), f"the usage did not show during the turn: {seen}"
        assert seen[0]["cost"] < seen[1]["cost"] < seen[2]["cost"], seen
        await expect(usage.locator(".cost")).to_have_text("$0.000252")  # 0.000094 * 2 + 0.000064
        # The server's own numbers (refetched after the events) agree with what was added up.
        await page.reload()
        await expect(page.get_by_role("region", name="Thread metrics").locator(".usage-stat")).to_have_attribute(
            "data-tokens", "321"
        )

        # The dashboard: usage over time as a chart with data, per day and per hour.
        await page.get_by_role("link", name="Dashboard").click()
        chart = page.locator(".usage-chart .chart-box")
        await expect(chart.locator("canvas")).to_have_count(1)
        await expect(chart).to_have_attribute("data-used", "1")
        assert int(await chart.get_attribute("data-points") or 0) >= 30
        await expect(page.locator(".usage-total")).to_have_attribute("data-tokens", "321")
        await wait_for_js(page, "document.querySelector('.usage-chart canvas').width > 0")
        # The canvas has something drawn on it (not one flat colour).
        colours = await page.evaluate(
            """() => {
              const c = document.querySelector('.usage-chart canvas');
              const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              const seen = new Set();
              for (let i = 0; i < data.length; i += 64) seen.add(data.slice(i, i + 4).join(','));
              return seen.size;
            }"""
        )
        assert colours > 3, colours
        await page.get_by_label("Per", exact=True).select_option("hour")
        await expect(chart).to_have_attribute("data-points", "49")
        await expect(chart).to_have_attribute("data-used", "1")
        await page.get_by_text("As a table").click()
        await expect(page.locator(".chart-table tbody tr")).to_have_count(1)
        await expect(page.locator(".chart-table tbody td").nth(1)).to_have_text("321")
        # The agent's status page.
        await page.get_by_role("link", name="Llama").click()
        await expect(page.get_by_role("heading", name="Llama")).to_be_visible()
        await expect(page.locator("[data-model]")).to_have_text("local-model-7b via local")
        await watched.assert_clean()
    finally:
        server.stop()
        await model.stop()


# --- the two-person rule -----------------------------------------------------------------------------


async def test_an_operation_waits_for_a_second_operator(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", toml_config(ops={"require_second_approval": ["restart"]})).start()
    try:
        operator = invite(server, server.token, "operator", name="Opal Operator")
        watched = await signed_in_page(browser, server, operator, viewport={"width": 1400, "height": 1000})
        page = watched.page
        await page.goto(f"{server.url}/dashboard")
        await wait_connected(page)
        agent = page.locator("tr[data-agent-id=spacebot]")
        await agent.get_by_role("button", name="Restart").click()
        dialog = page.get_by_role("dialog", name="Restart?")
        await dialog.get_by_label("Reason").fill("stuck worker")
        await page.keyboard.press("Enter")  # in the reason box: a new line, not a send
        await dialog.get_by_role("button", name="Restart").click()
        await expect(agent.locator("[data-ops-result]")).to_have_text("Waiting for a second operator to approve.")
        pending = page.locator(".pending-op")
        await expect(pending).to_have_count(1)
        await expect(pending).to_contain_text("stuck worker")
        await expect(pending).to_contain_text("Another operator has to approve it.")
        await expect(pending.get_by_role("button", name="Approve")).to_have_count(0)

        # The owner approves it from the same list; both pages see it done.
        owner = await signed_in_page(browser, server, viewport={"width": 1400, "height": 1000})
        await owner.page.goto(f"{server.url}/dashboard")
        theirs = owner.page.locator(".pending-op")
        await expect(theirs).to_contain_text("asked by Opal Operator")
        await theirs.get_by_role("button", name="Approve").click()
        await expect(owner.page.locator(".pending-op")).to_have_count(0)
        await expect(pending).to_have_count(0)
        await expect(page.locator(".recoveries li").first).to_contain_text("restart spacebot: ok")
        async with server.client() as client:
            operations = (await client.get("/v1/ops/pending")).json()["operations"]
        assert operations[0]["status"] == "done" and operations[0]["reason"] == "stuck worker"
        await watched.assert_clean()
        await owner.assert_clean()
    finally:
        server.stop()
