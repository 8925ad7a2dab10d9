"""The bundled web UI in real Chromium (issue 4): setup to a streamed agent reply, resuming
after a server restart, inert XSS payloads, the retry queue across an offline reload, retrying a
failed agent reply, and the shell's CSP-safe, vendored make-up. Each test runs its own
`spacechat serve` and browser context (test_ui_navigation.py has the rest)."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path, PurePosixPath

import httpx
import pytest
from playwright.async_api import Browser, expect

from .browser import (
    TIMEOUT_MS,
    WEB_UI,
    count_text,
    free_port,
    new_context,
    new_page,
    open_thread,
    post,
    service_worker_ready,
    sign_in,
    wait_connected,
)
from .fake_openai import REPLY, FakeOpenAI
from .support import Server, invite, toml_config

pytestmark = pytest.mark.browser


# --- setup -> owner -> channel -> post -> streamed agent reply ----------------------------------


async def test_setup_create_channel_post_and_watch_the_reply_stream(tmp_path: Path, browser: Browser) -> None:
    # A slow scripted agent, so the stream is seen growing token by token.
    config = toml_config(providers__scripted={"kind": "scripted", "chars_per_second": 120})
    server = Server(tmp_path / "data", config, create_owner=False).start()
    try:
        assert server.setup_token
        context = await new_context(browser)
        watched = await new_page(context)
        page = watched.page
        await page.goto(f"{server.url}/setup#token={server.setup_token}")
        assert "#token" not in page.url or await page.evaluate("location.hash") == ""
        await page.get_by_label("Your name").fill("Olive Owner")
        await page.get_by_label("Email").fill("olive@example.com")
        await page.get_by_label("Password (at least 10 characters)").fill("correct horse battery")
        await page.get_by_label("Repeat the password").fill("correct horse battery")
        await page.get_by_role("button", name="Create account").click()
        await expect(page.get_by_role("navigation", name="Channels")).to_be_visible()
        await wait_connected(page)

        await page.get_by_role("button", name="Create a channel").click()
        dialog = page.get_by_role("dialog", name="Create a channel")
        await dialog.get_by_label("Name").fill("launch-plans")
        await dialog.get_by_label("Topic").fill("Everything about the launch")
        await dialog.get_by_role("button", name="Create").click()
        await expect(page.get_by_role("heading", name="launch-plans")).to_be_visible()
        await expect(page.locator("a[data-channel-name=launch-plans]")).to_have_attribute("aria-current", "page")

        # Record every text the agent's reply shows, and its states, as they change.
        await page.evaluate(
            """() => {
              window.__seen = {texts: [], states: []};
              new MutationObserver(() => {
                const reply = document.querySelector('article.msg[data-author-kind=agent]');
                if (!reply) return;
                const text = reply.querySelector('.body') ? reply.querySelector('.body').textContent : '';
                const seen = window.__seen;
                if (seen.texts[seen.texts.length - 1] !== text) seen.texts.push(text);
                if (seen.states[seen.states.length - 1] !== reply.dataset.state) seen.states.push(reply.dataset.state);
              }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
            }"""
        )
        box = page.get_by_label("Start a new thread in #launch-plans")
        await box.fill("@spacebot what time is it?")
        await box.press("Enter")
        # Optimistic: the thread shows before the server answers, then is confirmed.
        row = page.locator("article.thread-row", has_text="@spacebot what time is it?")
        await expect(row).to_have_count(1)
        await row.locator("a").click()
        await expect(page.get_by_role("heading", name="@spacebot what time is it?")).to_be_visible()
        reply = page.locator("article.msg[data-author-kind=agent]")
        await expect(reply).to_have_attribute("data-state", "completed", timeout=TIMEOUT_MS)
        await expect(reply.locator(".body")).to_contain_text("UTC")
        seen = await page.evaluate("window.__seen")
        assert "streaming" in seen["states"], seen
        assert seen["states"][-1] == "completed", seen
        growing = [t for t in seen["texts"] if t]
        assert len(growing) >= 3, f"the reply did not stream in: {seen}"
        # Markdown re-renders as it grows (a half-written **bold** shows its stars), so only the
        # number of distinct texts is checked: one per render of a longer prefix.
        assert growing[-1].strip().endswith("UTC"), seen
        await expect(page.locator("article.msg", has_text="@spacebot what time is it?")).to_have_count(1)
        await watched.assert_clean()
        await context.close()
    finally:
        server.stop()


# --- a server restart while the page is open -------------------------------------------------------


async def test_server_restart_shows_reconnecting_then_resumes_without_duplicates(
    tmp_path: Path, browser: Browser
) -> None:
    config = toml_config(providers__scripted={"kind": "scripted", "chars_per_second": 25})
    server = Server(tmp_path / "data", config, port=free_port()).start()
    try:
        _, thread_id = await open_thread(server, "general", "Restart drill")
        context = await new_context(browser)
        await sign_in(context, server)
        watched = await new_page(context)
        page = watched.page
        await page.goto(f"{server.url}/t/{thread_id}")
        await wait_connected(page)
        await expect(page.locator("article.msg .body", has_text="Restart drill")).to_have_count(1)
        await page.evaluate("window.__sameDocument = true")

        # An agent reply is streaming when the server goes away.
        box = page.get_by_label("Reply in this thread")
        await box.fill("@spacebot tell me the time, slowly")
        await box.press("Enter")
        reply = page.locator("article.msg[data-author-kind=agent]")
        await expect(reply).to_have_attribute("data-state", "streaming")

        server.stop()
        await page.wait_for_selector(
            "html[data-connection=reconnecting], html[data-connection=offline]", state="attached"
        )
        await expect(page.locator(".connection").first).not_to_have_attribute("data-state", "connected")
        server.start()
        # Another client posts while this page is still reconnecting (its backoff has not fired).
        await post(server, f"/v1/threads/{thread_id}/messages", {"text": "posted during the outage"})
        await wait_connected(page)
        await expect(page.locator("article.msg .body", has_text="posted during the outage")).to_have_count(1)
        # The interrupted stream ends visibly, never stuck streaming.
        await expect(reply).to_have_attribute("data-state", "failed")
        await expect(reply.locator("[data-chip=interrupted]")).to_be_visible()

        # Nothing doubles afterwards either: a later message arrives once and the earlier stays single.
        await post(server, f"/v1/threads/{thread_id}/messages", {"text": "after the restart"})
        await expect(page.locator("article.msg .body", has_text="after the restart")).to_have_count(1)
        assert await count_text(page, "posted during the outage") == 1
        assert await count_text(page, "@spacebot tell me the time, slowly") == 1
        assert await page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        await watched.assert_clean()
        await context.close()
    finally:
        server.stop()


# --- XSS payloads render as inert text -------------------------------------------------------------

PAYLOADS = [
    "<script>alert('XSS1')</script>",
    "<img src=x onerror=alert('XSS2')>",
    "<svg onload=alert('XSS3')>",
    "<a href=\"javascript:alert('XSS4')\">click XSS4</a>",
    "[click XSS5](javascript:alert('XSS5'))",
    "<iframe src=\"javascript:alert('XSS6')\"></iframe>",
    '"><img src=x onerror=alert("XSS7")>',
    "<details open ontoggle=alert('XSS8')>",
    "![XSS9](x\" onerror=\"alert('XSS9'))",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('XSS10')>",
    "<a href='data:text/html,<script>alert(\"XSS11\")</script>'>XSS11</a>",
    "`<b>XSS12</b>` and ```\n<script>alert('XSS12b')</script>\n```",
    "<style>body{display:none}</style>XSS13",
    "<form action=javascript:alert('XSS14')><button>XSS14</button></form>",
]
FILE_PAYLOADS = ["<img src=x onerror=alert('F1')>.txt", "\"><svg onload=alert('F2')>.txt", "F3 javascript:alert(1).txt"]
DANGEROUS = """() => {
  // Anywhere in the app: nothing that runs script. In what people wrote (message bodies, file
  // names, names and topics): no element beyond the Markdown allow-list's harmless ones either.
  const bad = [];
  const url = /^\\s*(javascript|data|vbscript):/i;
  for (const el of document.querySelectorAll('#root *')) {
    const tag = el.tagName.toLowerCase();
    if (['script', 'iframe', 'object', 'embed', 'base', 'meta', 'frame'].includes(tag)) bad.push(tag);
    for (const attr of el.attributes) {
      if (attr.name.startsWith('on')) bad.push(tag + '[' + attr.name + ']');
      if (['href', 'src', 'action', 'formaction', 'xlink:href'].includes(attr.name) && url.test(attr.value)) {
        bad.push(tag + '[' + attr.name + '=' + attr.value + ']');
      }
    }
  }
  const written = '.body *, .filename *, .author *, .topic *, .org-name *, .team-name *, .thread-title *';
  for (const el of document.querySelectorAll(written)) {
    const tag = el.tagName.toLowerCase();
    if (['style', 'form', 'input', 'button', 'img', 'svg', 'math', 'details', 'link', 'textarea'].includes(tag)) {
      bad.push('written ' + tag);
    }
  }
  return bad;
}"""


async def test_xss_payloads_in_messages_file_names_and_names_render_as_inert_text(
    tmp_path: Path, browser: Browser
) -> None:
    payload_org = "<img src=x onerror=alert('ORG')>"
    config = toml_config(bootstrap={"org_name": payload_org})
    server = Server(tmp_path / "data", config).start()
    try:
        channel_id = server.channel_id("general")
        async with server.client() as client:
            # Channel names are restricted to [a-z0-9_-]: a payload is refused outright.
            refused = await client.post("/v1/channels", json={"name": "<script>alert(1)</script>"})
            assert refused.status_code == 400
            topic = "<img src=x onerror=alert('TOPIC')> **topic**"
            created = await client.post("/v1/channels", json={"name": "xss-lab", "topic": topic, "category": "ops"})
            assert created.status_code == 201, created.text
            team = await client.post("/v1/teams", json={"name": "<svg onload=alert('TEAM')>"})
            assert team.status_code == 201, team.text
            first = await client.post(f"/v1/channels/{channel_id}/messages", json={"text": PAYLOADS[0]})
            thread_id = first.json()["thread"]["id"]
            for text in PAYLOADS[1:]:
                answer = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": text})
                assert answer.status_code == 201, answer.text
            attachments = []
            for name in FILE_PAYLOADS:
                uploaded = await client.post(
                    "/v1/uploads", params={"filename": name}, content=b"hello", headers={"Content-Type": "text/plain"}
                )
                assert uploaded.status_code == 201, uploaded.text
                attachments.append(uploaded.json()["attachment"])
            files = await client.post(
                f"/v1/threads/{thread_id}/messages",
                json={"text": "files", "attachments": [a["id"] for a in attachments]},
            )
            assert files.status_code == 201, files.text
        person = invite(server, server.token, "member", name="<img src=x onerror=alert('NAME')>")
        async with httpx.AsyncClient(base_url=server.url, headers=person.auth, timeout=30) as client:
            said = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": "hello from a person"})
            assert said.status_code == 201, said.text

        context = await new_context(browser)
        await sign_in(context, server)
        watched = await new_page(context)
        page = watched.page
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await page.goto(f"{server.url}/t/{thread_id}")
        await wait_connected(page)
        await expect(page.locator("article.msg .body", has_text="hello from a person")).to_have_count(1)
        # Every message is in view (a short thread) and each payload is shown as text.
        for i in range(1, 15):
            await expect(page.locator("article.msg", has_text=f"XSS{i}").first).to_be_attached()
        await expect(page.locator("article.msg .body", has_text="<script>alert('XSS1')</script>")).to_have_count(1)
        await expect(page.locator("article.msg .body", has_text="<img src=x onerror=alert('XSS2')>")).to_have_count(1)
        for attachment in attachments:
            await expect(page.locator(".attachment .filename", has_text=attachment["filename"])).to_have_count(1)
        await expect(page.locator("article.msg .author", has_text="<img src=x onerror=alert('NAME')>")).to_have_count(1)
        await expect(page.locator(".org-name")).to_have_text(payload_org)
        await expect(page.locator(".team-name", has_text="<svg onload=alert('TEAM')>")).to_have_count(1)
        await page.locator("a[data-channel-name=xss-lab]").click()
        await expect(page.locator(".topic")).to_have_text(topic)
        await page.locator("a[data-channel-name=general]").click()
        await expect(page.locator("article.thread-row", has_text="<script>alert('XSS1')</script>")).to_have_count(1)

        await page.goto(f"{server.url}/t/{thread_id}")
        await expect(page.locator("article.msg .body", has_text="hello from a person")).to_have_count(1)
        assert await page.evaluate(DANGEROUS) == []
        assert await page.evaluate("window.__xss") == []
        assert dialogs == []
        await watched.assert_clean()
        await context.close()
    finally:
        server.stop()


# --- the retry queue survives a reload --------------------------------------------------------------


async def test_unsent_message_survives_a_reload_offline_and_arrives_once(server: Server, browser: Browser) -> None:
    _, thread_id = await open_thread(server, "general", "Offline drill")
    context = await new_context(browser)
    await sign_in(context, server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{server.url}/t/{thread_id}")
    await wait_connected(page)
    await service_worker_ready(page)

    await context.set_offline(True)
    box = page.get_by_label("Reply in this thread")
    await box.fill("written on the train")
    await box.press("Enter")
    pending = page.locator("article.msg[data-pending]", has_text="written on the train")
    await expect(pending).to_have_attribute("data-pending", "queued")

    await page.reload()  # the service worker serves the app; the queue comes back from IndexedDB
    await expect(page.locator("article.msg[data-pending]", has_text="written on the train")).to_have_count(1)
    await context.set_offline(False)
    await wait_connected(page)
    delivered = page.locator("article.msg[data-message-id]", has_text="written on the train")
    await expect(delivered).to_have_count(1)
    await expect(page.locator("article.msg[data-pending]")).to_have_count(0)

    async with server.client() as client:
        history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
    assert [m["text"] for m in history].count("written on the train") == 1
    await page.reload()
    await expect(page.locator("article.msg .body", has_text="written on the train")).to_have_count(1)
    assert await page.evaluate("indexedDB.databases().then((d) => d.map((x) => x.name))") is not None
    await context.close()


async def test_a_failed_agent_reply_offers_retry_and_the_retry_streams_in(tmp_path: Path, browser: Browser) -> None:
    model = await FakeOpenAI().start()
    model.fail_with = 503  # the model's API is down: the agent's turn fails
    config = toml_config(
        f"""
[providers.local]
kind = "openai"
base_url = "{model.url}"

[[agents]]
id = "llama"
name = "Llama"
provider = "local"
model = "local-model-7b"
channels = ["spacebot"]
"""
    )
    server = Server(tmp_path / "data", config).start()
    try:
        context = await new_context(browser)
        await sign_in(context, server)
        watched = await new_page(context)
        page = watched.page
        await page.goto(f"{server.url}/c/{server.channel_id('spacebot')}")
        await wait_connected(page)
        box = page.get_by_label("Start a new thread in #spacebot")
        await box.fill("hello, model?")
        await box.press("Enter")
        # A new thread in an agent's channel opens by itself (issue 13).
        await expect(page.get_by_role("heading", name="hello, model?")).to_be_visible()
        failed = page.locator("article.msg[data-author-kind=agent][data-state=failed]")
        await expect(failed.locator("[data-chip=failed]")).to_be_visible()
        await expect(failed.locator(".failure")).to_be_visible()

        model.fail_with = None
        await failed.get_by_role("button", name="Retry").click()
        await expect(failed.locator(".failure")).to_contain_text("Retried.")
        await expect(failed.get_by_role("button", name="Retry")).to_have_count(0)
        completed = page.locator("article.msg[data-author-kind=agent][data-state=completed]")
        await expect(completed.locator(".body")).to_have_text(REPLY)
        await expect(page.locator("article.msg[data-author-kind=agent]")).to_have_count(2)
        await watched.assert_clean()
        await context.close()
    finally:
        server.stop()
        await model.stop()


STATIC_IMPORT = re.compile(
    r"""\b(?:import|export)\s*[^;"'()=]*?\bfrom\s*["'](\.{1,2}/[^"']+)["']|\bimport\s*["'](\.{1,2}/[^"']+)["']"""
)
DYNAMIC_IMPORT = re.compile(r"""\bimport\(\s*["']([^"']+)["']\s*\)""")


def imports(module: str, pattern: re.Pattern[str]) -> set[str]:
    """The modules `module` (a URL path such as `/app.js`) imports, as URL paths."""
    text = (WEB_UI / module.lstrip("/")).read_text()
    base = PurePosixPath(module).parent
    found = set()
    for match in pattern.finditer(text):
        spec = next(group for group in match.groups() if group)
        found.add(posixpath.normpath(str(base / spec)))
    return found


def first_screen_graph() -> set[str]:
    """Every module app.js needs before it runs: its static imports, and theirs."""
    seen: set[str] = set()
    todo = ["/app.js"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports(module, STATIC_IMPORT))
    return seen


def test_shell_has_no_inline_script_or_style_and_preloads_every_module() -> None:
    """The CSP forbids inline scripts and styles; the shell must not need them. Every module the
    first screen needs is preloaded with the page (the browser asks for them all at once), the
    ones loaded on demand are not (a first paint does not wait for them), and every module is
    precached by the service worker (so the app opens offline, every view included)."""
    shell = (WEB_UI / "index.html").read_text()
    assert "<style" not in shell and " style=" not in shell
    assert shell.count("<script") == 1 and '<script type="module" src="/app.js"></script>' in shell
    worker = (WEB_UI / "sw.js").read_text()
    modules = sorted(
        "/" + str(path.relative_to(WEB_UI))
        for path in WEB_UI.rglob("*.js")
        if path.name not in ("sw.js", "sw-notify.js", "vendor-files.js")  # the service worker's scripts
    )
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', shell))
    graph = first_screen_graph()
    assert preloaded == graph, (sorted(graph - preloaded), sorted(preloaded - graph))
    on_demand = set().union(*(imports(module, DYNAMIC_IMPORT) for module in modules))
    assert on_demand and not on_demand & graph
    everything_reached = set(graph)
    todo = sorted(on_demand)
    while todo:
        module = todo.pop()
        if module not in everything_reached:
            everything_reached.add(module)
            todo.extend(imports(module, STATIC_IMPORT) | imports(module, DYNAMIC_IMPORT))
    assert set(modules) <= everything_reached, sorted(set(modules) - everything_reached)
    for module in modules:
        if not module.startswith("/vendor/"):
            assert f'"{module}"' in worker, module
    vendored = (WEB_UI / "vendor-files.js").read_text()
    for module in modules:
        if module.startswith("/vendor/"):
            assert f'"{module}"' in vendored, module


def test_every_vendored_library_is_pinned_and_keeps_its_license() -> None:
    import json

    pinned = json.loads((WEB_UI / "vendor.json").read_text())["dependencies"]
    folders = [path for path in (WEB_UI / "vendor").iterdir() if path.is_dir()]
    assert len(folders) == len(pinned)
    for folder in folders:
        assert (folder / "LICENSE").exists(), folder
        assert any(folder.name.endswith("-" + version) for version in pinned.values()), folder
    assert not (WEB_UI / "node_modules").exists()
