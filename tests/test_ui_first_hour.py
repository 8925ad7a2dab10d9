"""The first hour without friction (issue 13): each rough edge a newcomer hit, as a test in real
Chromium that failed before its fix."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from .browser import TIMEOUT_MS, WEB_UI, open_thread, signed_in_page, wait_connected, wait_for_js
from .support import Server, invite

pytestmark = pytest.mark.browser


async def api(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    async with server.client() as client:
        response = await client.request(method, path, **kwargs)
        assert response.status_code < 400, response.text
        return response.json() if response.content else None


async def ask_spacebot(page: Page, server: Server, text: str) -> None:
    """Start a thread in #spacebot from its message box, as a person would."""
    await page.goto(f"{server.url}/c/{server.channel_id('spacebot')}")
    await wait_connected(page)
    box = page.get_by_label("Start a new thread in #spacebot")
    await box.fill(text)
    await box.press("Enter")


# --- Ctrl+K leaves the focus on the channel's threads, not in the message box ----------------------


async def test_ctrl_k_jump_then_j_j_enter_opens_a_thread_and_sends_nothing(server: Server, browser: Browser) -> None:
    for title in ("First ops thread", "Second ops thread", "Third ops thread"):
        await open_thread(server, "ops", title)
    watched = await signed_in_page(browser, server, viewport={"width": 1280, "height": 800})
    page = watched.page
    await page.goto(f"{server.url}/c/{server.channel_id('general')}")
    await wait_connected(page)
    await page.keyboard.press("Control+k")
    await expect(page.locator("#channel-filter")).to_be_focused()
    await page.keyboard.type("ops")
    await page.keyboard.press("Enter")
    await expect(page.locator("h1#view-title")).to_have_text("ops")
    await expect(page.locator("article.thread-row")).to_have_count(3)
    await page.keyboard.press("j")
    await page.keyboard.press("j")
    await page.keyboard.press("Enter")
    # Newest first: the second row is the second newest thread.
    await expect(page.get_by_role("heading", name="Second ops thread")).to_be_visible()
    await expect(page.locator("article.msg")).to_have_count(1)
    threads = await api(server, "GET", f"/v1/channels/{server.channel_id('ops')}/threads")
    assert [t["title"] for t in threads["threads"]] == ["Third ops thread", "Second ops thread", "First ops thread"]
    await watched.assert_clean()


# --- posting in an agent's channel opens the thread, where the reply comes ------------------------


async def test_a_new_thread_in_an_agents_channel_opens_with_its_reply(server: Server, browser: Browser) -> None:
    watched = await signed_in_page(browser, server)
    page = watched.page
    await ask_spacebot(page, server, "what time is it?")
    await expect(page.get_by_role("heading", name="what time is it?")).to_be_visible()
    assert "/t/" in page.url
    reply = page.locator("article.msg[data-author-kind=agent]")
    await expect(reply).to_have_attribute("data-state", "completed", timeout=TIMEOUT_MS)
    await expect(reply.locator(".body")).to_contain_text("UTC")
    # In a people's channel, a new thread stays in the list (as in Slack).
    await page.goto(f"{server.url}/c/{server.channel_id('general')}")
    await wait_connected(page)
    box = page.get_by_label("Start a new thread in #general")
    await box.fill("Lunch at noon?")
    await box.press("Enter")
    await expect(page.locator("article.thread-row[data-thread-id]", has_text="Lunch at noon?")).to_have_count(1)
    assert "/c/" in page.url
    await watched.assert_clean()


# --- setup and invitation ask for the password the same way ----------------------------------------


async def test_the_invitation_page_asks_for_the_password_twice_like_setup(server: Server, browser: Browser) -> None:
    made = await api(server, "POST", "/v1/invitations", json={"role": "member"})
    watched = await signed_in_page(browser, server)
    await watched.page.context.clear_cookies()  # a newcomer: not signed in
    page = watched.page
    await page.goto(f"{server.url}/invite#token={made['token']}")
    await expect(page.get_by_role("heading", name="Join Spacechat")).to_be_visible()
    await page.get_by_label("Your name").fill("Nia Newcomer")
    await page.get_by_label("Email").fill("nia@example.com")
    await page.get_by_label("Password (at least 10 characters)").fill("a long enough passphrase")
    await page.get_by_label("Repeat the password").fill("a long enough passfrase")
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("alert")).to_have_text("The passwords do not match.")
    users = await api(server, "GET", "/v1/users")
    assert "nia@example.com" not in [u["email"] for u in users["users"]]
    await page.get_by_label("Repeat the password").fill("a long enough passphrase")
    await page.get_by_role("button", name="Join").click()
    await expect(page.get_by_role("navigation", name="Channels")).to_be_visible()
    await watched.assert_clean()


# --- an agent's card settles for everyone, live; its answers come below, in words -------------------


async def test_an_agents_card_settles_for_everyone_and_the_agent_answers_below(
    server: Server, browser: Browser
) -> None:
    olivia = invite(server, server.token, "member", name="Olivia Ops")
    watched = await signed_in_page(browser, server)
    page = watched.page
    await ask_spacebot(page, server, "post an approval card")
    card = page.locator("article.msg[data-author-kind=agent]", has=page.locator(".block-actions"))
    await expect(card.get_by_role("button", name="Approve")).to_be_enabled(timeout=TIMEOUT_MS)
    other = await signed_in_page(browser, server, olivia)
    await other.page.goto(page.url)
    await wait_connected(other.page)
    theirs = other.page.locator("article.msg[data-author-kind=agent]", has=other.page.locator(".block-actions"))
    await expect(theirs.get_by_role("button", name="Approve")).to_be_enabled()

    await card.get_by_role("button", name="Approve").click()
    settled = re.compile(r"^✓ Approved by Olive Owner at \d\d:\d\d( [AP]M)?$")  # the browser's locale says which
    for view in (card, theirs):  # settled for everyone, live
        await expect(view.locator(".decided")).to_have_text(settled)
        # The card's own controls are gone (the message's action bar, React and the rest, stays).
        await expect(view.locator(".blocks").get_by_role("button")).to_have_count(0)
    answer = page.locator("article.msg[data-author-kind=agent]:not(:has(.blocks))").last
    await expect(answer.locator(".body")).to_have_text(
        "Approved. Deploying to staging now; I will post here when it is live.", timeout=TIMEOUT_MS
    )
    assert await answer.evaluate("(a) => Number(a.dataset.index)") > await card.evaluate(
        "(a) => Number(a.dataset.index)"
    ), "the answer is below the card"
    await expect(page.locator("article.msg .body", has_text="[interaction]")).to_have_count(0)
    await watched.assert_clean()
    await other.assert_clean()


async def test_answering_an_agents_question_hides_the_menu_and_the_answer_comes_below(
    server: Server, browser: Browser
) -> None:
    watched = await signed_in_page(browser, server)
    page = watched.page
    await ask_spacebot(page, server, "please ask me which environment")
    asking = page.locator("article.msg", has=page.locator(".card-select"))
    await expect(asking).to_have_count(1, timeout=TIMEOUT_MS)
    question = page.locator(f"article.msg[data-message-id='{await asking.get_attribute('data-message-id')}']")
    await question.get_by_label("Choose").select_option("staging")
    await question.get_by_role("button", name="Send").click()
    await expect(question.locator(".decided")).to_have_text(re.compile(r"^✓ “staging” chosen by Olive Owner at "))
    await expect(question.locator("select")).to_have_count(0)
    agent = "article.msg[data-author-kind=agent][data-state=completed]"
    answer = page.locator(agent, has_text="The answer was: staging")
    await expect(answer).to_have_count(1, timeout=TIMEOUT_MS)
    assert await answer.evaluate("(a) => Number(a.dataset.index)") > await question.evaluate(
        "(a) => Number(a.dataset.index)"
    ), "the answer is below the question"
    await watched.assert_clean()


# --- the task board offers only allowed moves, its controls fit, and it works on a phone -----------


async def test_the_board_offers_allowed_moves_fits_its_cards_and_works_on_a_phone(
    server: Server, browser: Browser
) -> None:
    created = await api(server, "POST", "/v1/tasks", json={"title": "Rotate the TLS certificates", "status": "ready"})
    task = created["task"]
    watched = await signed_in_page(browser, server, viewport={"width": 1280, "height": 800})
    page = watched.page
    await page.goto(f"{server.url}/tasks")
    await wait_connected(page)
    card = page.locator(f"li.task-card[data-task-id='{task['id']}']")
    await expect(card).to_have_attribute("data-status", "ready")
    moves = card.get_by_label("Move to")
    offered = (await moves.locator("option").all_inner_texts())[1:]
    assert offered == [
        {"in_progress": "In progress", "backlog": "Backlog", "failed": "Failed", "done": "Done"}[s]
        for s in task["allowed_transitions"]
    ], offered
    box, inside = await card.bounding_box(), await moves.bounding_box()
    assert box and inside and inside["x"] + inside["width"] <= box["x"] + box["width"] + 0.5, "the select fits its card"
    button = card.get_by_role("button", name="Move", exact=True)
    end = await button.bounding_box()
    assert end and end["x"] + end["width"] <= box["x"] + box["width"] + 0.5, "and so does its button"

    # A phone: the columns stack, empty ones are a line each, the task is on screen.
    await page.set_viewport_size({"width": 375, "height": 740})
    await expect(card).to_be_in_viewport()
    box = await card.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await moves.select_option("in_progress")
    await button.click()
    await expect(card).to_have_attribute("data-status", "in_progress")
    await watched.assert_clean()


# --- a new API token: all my scopes in one tick, and a Copy button --------------------------------


async def test_a_token_with_all_my_scopes_and_a_copy_button(server: Server, browser: Browser) -> None:
    watched = await signed_in_page(browser, server, permissions=["clipboard-read", "clipboard-write"])
    page = watched.page
    await page.goto(f"{server.url}/settings")
    await wait_connected(page)
    form = page.get_by_role("form", name="New API token")
    await form.get_by_label("Name").fill("deploy script")
    await form.get_by_label("All my scopes").check()
    await form.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("The new token's secret")
    await expect(secret).to_have_value(re.compile(r"^sc_"))
    await page.locator(".secret").get_by_role("button", name="Copy").click()
    await expect(page.locator(".secret")).to_contain_text("Copied.")
    assert await page.evaluate("navigator.clipboard.readText()") == await secret.input_value()
    me = await api(server, "GET", "/v1/me")
    tokens = await api(server, "GET", "/v1/tokens")
    made = next(t for t in tokens["tokens"] if t["name"] == "deploy script")
    assert sorted(made["scopes"]) == sorted(me["scopes"])
    await watched.assert_clean()


# --- a profile: picture, display name, password ----------------------------------------------------

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0"
    "f01f0005050200 5fc8f1d20000000049454e44ae426082".replace(" ", "")
)


async def test_a_profile_with_a_picture_a_name_and_a_new_password(
    server: Server, browser: Browser, tmp_path: Any
) -> None:
    person = invite(server, server.token, "member", name="Pat Person")
    watched = await signed_in_page(browser, server, person)
    page = watched.page
    await page.goto(f"{server.url}/c/{server.channel_id('general')}")
    await wait_connected(page)
    await page.locator(".sidebar-foot a.me").click()
    await expect(page.get_by_role("heading", name="Your profile")).to_be_visible()

    picture = tmp_path / "me.png"
    picture.write_bytes(PNG)
    await page.get_by_label(re.compile("^Choose a picture")).set_input_files(str(picture))
    await expect(page.locator(".saved")).to_have_text("Your picture is saved.")
    image = page.locator(".profile-picture img.avatar")
    await expect(image).to_have_attribute("src", re.compile(r"^/v1/users/usr_\w+/avatar\?v=att_"))
    await wait_for_js(page, "document.querySelector('.profile-picture img.avatar').naturalWidth === 1")
    await expect(page.locator(".sidebar-foot img.avatar")).to_have_count(1)

    named = page.get_by_role("region", name="Display name")
    await named.get_by_role("textbox", name="Name").fill("Pat Renamed")
    await named.get_by_role("button", name="Save").click()
    await expect(page.locator(".sidebar-foot .me")).to_have_text("Pat Renamed")

    password = page.get_by_role("region", name="Password")
    await password.get_by_label("Current password").fill(person.password)
    await password.get_by_label("New password (at least 10 characters)").fill("another long passphrase")
    await password.get_by_label("Repeat the password").fill("another long passphrase!")
    await password.get_by_role("button", name="Change the password").click()
    await expect(password.get_by_role("alert")).to_have_text("The passwords do not match.")
    await password.get_by_label("Repeat the password").fill("another long passphrase")
    await password.get_by_role("button", name="Change the password").click()
    await expect(password.locator(".saved")).to_have_text(
        "Your password is changed. Your other devices were signed out."
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        login = {"email": person.user["email"], "password": "another long passphrase"}
        assert (await client.post("/v1/auth/login", json=login)).status_code == 200
        users = (await client.get("/v1/users", headers=server.auth)).json()["users"]
    me = next(u for u in users if u["id"] == person.id)
    assert me["name"] == "Pat Renamed" and me["avatar_url"]
    await watched.assert_clean()


# --- polls and forms from the message box; a form's answers for its poster, and as CSV --------------


async def test_polls_and_forms_from_the_message_box_and_a_forms_answers(server: Server, browser: Browser) -> None:
    mia = invite(server, server.token, "member", name="Mia Member")
    general = f"{server.url}/c/{server.channel_id('general')}"
    watched = await signed_in_page(browser, server)
    page = watched.page
    await page.goto(general)
    await wait_connected(page)

    await page.get_by_role("button", name="New poll or form").click()
    dialog = page.get_by_role("dialog", name="New poll or form")
    await dialog.get_by_label("Question").fill("Team lunch: where?")
    await dialog.get_by_label("Choices, one per line").fill("Pizza\nSushi\nSalad")
    await dialog.get_by_role("button", name="Post").click()
    await expect(dialog).to_have_count(0)
    await expect(page.get_by_role("button", name="New poll or form")).to_be_focused()
    await page.locator("article.thread-row a", has_text="Team lunch: where?").click()
    poll = page.get_by_role("radiogroup", name="Team lunch: where?")
    await expect(poll.get_by_role("radio")).to_have_count(3)
    await expect(poll.get_by_label("Sushi")).to_be_visible()

    await page.goto(general)
    await page.get_by_role("button", name="New poll or form").click()
    await dialog.get_by_label("Form").check()
    await dialog.get_by_label("Title").fill("Offsite survey")
    await dialog.locator("[data-field='0']").get_by_label("Question", exact=True).fill("Your name for the badge")
    await dialog.locator("[data-field='0']").get_by_label("Required").check()
    await dialog.get_by_role("button", name="Add a question").click()
    second = dialog.locator("[data-field='1']")
    await second.get_by_label("Question", exact=True).fill("Diet")
    await second.get_by_label("Answer").select_option("select")
    await second.get_by_label("Choices, one per line").fill("Anything\nVegetarian\n=cmd|' /C calc'!A0")
    await dialog.get_by_role("button", name="Post").click()
    await page.locator("article.thread-row a", has_text="Offsite survey").click()
    answers = page.get_by_role("button", name="Answers (0)")
    await expect(answers).to_be_visible()
    thread_url = page.url

    other = await signed_in_page(browser, server, mia)
    await other.page.goto(thread_url)
    await wait_connected(other.page)
    form = other.page.locator("form.block-form")
    await expect(form.get_by_role("button", name=re.compile("^Answers"))).to_have_count(0)  # not hers
    await form.get_by_label("Your name for the badge").fill("Mia M.")
    await form.get_by_label("Diet").select_option(label="=cmd|' /C calc'!A0")
    await form.get_by_role("button", name="Submit").click()
    await expect(form.locator(".feedback")).to_have_text("Submitted.")

    await expect(page.get_by_role("button", name="Answers (1)")).to_be_visible()  # live
    await page.get_by_role("button", name="Answers (1)").click()
    table = page.get_by_role("dialog", name="Answers").locator("table")
    await expect(table.locator("tbody tr")).to_have_count(1)
    await expect(table.locator("tbody tr th")).to_have_text("Mia Member")
    await expect(table.locator("tbody tr td").nth(1)).to_have_text("Mia M.")
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Download CSV").click()
    download = await waiting.value
    text = (await download.path()).read_text(encoding="utf-8-sig")
    rows = [line for line in text.splitlines() if line]
    assert rows[0] == "Submitted at,Name,Your name for the badge,Diet"
    # The choice by its label, and a would-be formula kept as text (CSV injection).
    assert rows[1].endswith(",Mia Member,Mia M.,'=cmd|' /C calc'!A0"), rows
    await watched.assert_clean()
    await other.assert_clean()


# --- the first visit: the whole module graph at once, compressed; the next from the worker's cache ---


async def test_a_first_visit_gets_every_module_compressed_at_once_and_the_next_from_the_cache(
    server: Server, browser: Browser
) -> None:
    watched = await signed_in_page(browser, server)
    page = watched.page
    modules: list[Any] = []
    page.on("response", lambda response: modules.append(response) if response.url.endswith((".js", ".mjs")) else None)
    await page.goto(f"{server.url}/c/{server.channel_id('general')}")
    await wait_connected(page)
    await expect(page.locator("h1#view-title")).to_have_text("general")
    shell = (await (await page.request.get(f"{server.url}/")).text()).count('rel="modulepreload"')
    fetched = [m for m in modules if "/sw.js" not in m.url and "/vendor-files.js" not in m.url]
    assert len(fetched) >= shell, (len(fetched), shell)
    for response in fetched:
        headers = await response.all_headers()
        size = (WEB_UI / response.url.split("/", 3)[3]).stat().st_size
        if size >= 512:  # tiny files are not worth it
            assert headers.get("content-encoding") == "gzip", (response.url, headers)
        assert headers.get("etag"), response.url
    # Every module was asked for before the app's own code ran (the shell preloads the graph).
    starts = await page.evaluate(
        "performance.getEntriesByType('resource').filter((r) => (r.name.endsWith('.js') || r.name.endsWith('.mjs'))"
        " && !r.name.includes('sw.js')).map((r) => r.startTime)"
    )
    boot = await page.evaluate("performance.getEntriesByName('spacechat:boot')[0].startTime")
    assert starts and max(starts) <= boot, (max(starts), boot)

    # The next visit: nothing of the app from the network.
    await wait_for_js(page, "navigator.serviceWorker.controller !== null")
    await wait_for_js(page, "caches.has('spacechat-shell-v1')")
    modules.clear()
    await page.reload()
    await wait_connected(page)
    await expect(page.locator("h1#view-title")).to_have_text("general")
    assert modules and all(m.from_service_worker for m in modules if "/sw.js" not in m.url)
    await watched.assert_clean()
