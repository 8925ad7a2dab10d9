"""Memory in the web UI, in real Chromium (issue 12): a reviewer takes a candidate from the queue
by keyboard, edits it (seeing the diff) and approves it; the agent holds the edited memory; search
by meaning finds it by a paraphrase; the person it is about sees it in their settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from .browser import signed_in_page, wait_connected
from .support import Server, invite, toml_config, wait_until

pytestmark = pytest.mark.browser

SAID = "the staging database password rotates every Monday"
EDITED = "Staging database credentials are rotated every Monday morning."


async def test_review_edit_approve_and_find_by_paraphrase(tmp_path: Path, browser: Browser) -> None:
    server = Server(tmp_path / "data", toml_config()).start()
    try:
        ann = invite(server, server.token, "member", name="Ann Archer")

        def queued() -> bool:
            with httpx.Client(base_url=server.url, headers=server.auth) as owner:
                pending = owner.get("/v1/memory/candidates").json()["candidates"]
                return any(c["content"] == SAID for c in pending)

        with httpx.Client(base_url=server.url, headers=ann.auth) as client:
            posted = client.post(
                f"/v1/channels/{server.channel_id('spacebot')}/messages", json={"text": f"remember that {SAID}"}
            )
            assert posted.status_code == 201, posted.text
        await asyncio.to_thread(wait_until, queued, 20)

        watched = await signed_in_page(browser, server)
        page = watched.page
        await page.goto(f"{server.url}/memory")
        await wait_connected(page)
        await expect(page.get_by_role("heading", name="Memory", exact=True)).to_be_visible()
        await expect(page.get_by_text("1 waiting for review")).to_be_visible()
        candidate = page.locator("article.candidate")
        await expect(candidate.locator(".candidate-content")).to_have_text(SAID)
        # The source in context: Ann's message, marked as the source.
        await expect(candidate.locator(".source-context li.source")).to_contain_text(f"remember that {SAID}")

        await candidate.focus()
        await page.keyboard.press("e")
        box = candidate.get_by_label("Memory text")
        await expect(box).to_be_focused()
        await box.fill(EDITED)
        diff = candidate.get_by_label("Your edit")
        await expect(diff.locator(".del")).to_contain_text(SAID)
        await expect(diff.locator(".ins")).to_contain_text(EDITED)
        await candidate.get_by_role("button", name="Approve edited").click()
        await expect(page.get_by_text("Nothing waits for review.")).to_be_visible()

        memories = json.loads((server.data_dir / "host-memories.jsonl").read_text().splitlines()[-1])
        assert memories["content"] == EDITED and memories["agent_id"] == "spacebot"

        await page.goto(f"{server.url}/search")
        # Search opens on words and operators; its Mode goes to search by meaning, with memories.
        await page.get_by_label("Mode").select_option("semantic")
        await page.get_by_label("Search messages and memories").fill("when do we change the staging db password?")
        await page.get_by_label("Mode").select_option("semantic")
        await page.get_by_role("button", name="Search", exact=True).click()
        found = page.locator('li.search-result[data-kind="memory"]', has_text=EDITED)
        await expect(found).to_have_count(1)
        rank = await page.evaluate(
            "(text) => [...document.querySelectorAll('li.search-result')]"
            ".findIndex((li) => li.textContent.includes(text))",
            EDITED,
        )
        assert 0 <= rank < 3, f"the memory ranks {rank + 1}"
        await found.get_by_role("link").click()
        await expect(page.get_by_role("heading", name=EDITED)).to_be_visible()
        await expect(page.locator("ol.revisions li")).to_have_count(1)
        await watched.assert_clean()

        mine = await signed_in_page(browser, server, ann)
        await mine.page.goto(f"{server.url}/settings")
        await expect(mine.page.locator("ul.my-memories li")).to_contain_text(EDITED)
        await expect(mine.page.get_by_label("Agents may remember what I say")).to_be_checked()
        await mine.assert_clean()
    finally:
        server.stop()
