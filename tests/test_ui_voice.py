"""Voice memos in real Chromium with a fake microphone that speaks a Piper clip: record, see the
live transcript, send, play at 2x, click a word to seek; a refused microphone says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from .browser import events_of, log_seq, new_context, new_page, open_thread, sign_in, wait_connected, wait_for_js
from .support import Server, toml_config
from .voice_support import Clip, word_error_rate, words

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def voice_server(tmp_path: Path, voice_model: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data", toml_config()).start()
    yield running
    running.stop()


async def test_record_see_live_transcript_send_play_at_2x_and_seek_by_word(
    browser_with_microphone: Browser, voice_server: Server, clip: Clip
) -> None:
    context = await new_context(browser_with_microphone, viewport={"width": 390, "height": 800})
    await context.grant_permissions(["microphone"], origin=voice_server.url)
    await sign_in(context, voice_server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{voice_server.url}/c/{voice_server.channel_id('general')}")
    await wait_connected(page)

    await page.get_by_role("button", name="Record a voice memo").click()
    recorder = page.get_by_role("group", name="Voice memo")
    await expect(recorder.get_by_role("timer", name="Recording time")).to_be_visible()
    # The live transcript grows while the fake microphone speaks the sentence.
    live = recorder.locator(".voice-live")
    await expect(live).to_contain_text("schedule", timeout=30_000)
    await expect(live).to_contain_text("Tuesday", timeout=30_000)
    await recorder.get_by_role("button", name="Send").click()
    await expect(recorder).to_have_count(0, timeout=30_000)

    # The memo opened a thread ("Voice memo (0:12)"); in it, the player and the transcript.
    await page.get_by_role("link", name="Voice memo").first.click()
    note = page.locator(".voice-note[data-voice=transcribed]").last
    await expect(note).to_be_visible(timeout=60_000)
    transcript = note.locator(".voice-transcript")
    await expect(transcript).to_contain_text("Tuesday", timeout=30_000)
    # The fake microphone plays the clip in a loop: the memo says the sentence once per loop.
    said = await transcript.inner_text()
    loops = max(1, round(len(words(said)) / len(words(clip.text))))
    assert word_error_rate(" ".join([clip.text] * loops), said) <= 0.25, said

    await note.get_by_role("combobox", name="Playback speed").select_option("2")
    await note.get_by_role("button", name="Play voice memo").click()
    await expect(note).to_have_attribute("data-playing", "true")
    await expect(note).to_have_attribute("data-speed", "2")
    await wait_for_js(page, "Number(document.querySelector('.voice-note[data-memo-id]').dataset.time) > 0.5")
    await note.get_by_role("button", name="Pause voice memo").click()

    word = transcript.locator(".word", has_text="Tuesday").first
    start = float(await word.get_attribute("data-start") or "0")
    await word.click()
    at = float(await note.get_attribute("data-time") or "0")
    assert abs(at - start) < 0.3, (at, start)
    # The waveform is a slider: the keyboard moves it.
    slider = note.get_by_role("slider")
    await slider.focus()
    await page.keyboard.press("Home")
    await expect(note).to_have_attribute("data-time", "0.00")
    await watched.assert_clean()
    await context.close()


# Samples a page value every 30 ms into window[name] (a list), until the page goes.
SAMPLE = """([name, selector]) => {
  window[name] = [];
  setInterval(() => { const el = document.querySelector(selector); if (el) window[name].push(el.value); }, 30);
}"""


async def test_the_meter_moves_cancel_posts_nothing_and_sending_shows_its_progress(
    browser_with_microphone: Browser, voice_server: Server
) -> None:
    context = await new_context(browser_with_microphone)
    await context.grant_permissions(["microphone"], origin=voice_server.url)
    await sign_in(context, voice_server)
    watched = await new_page(context)
    page = watched.page
    channel = voice_server.channel_id("general")
    seq = await log_seq(voice_server)
    await page.goto(f"{voice_server.url}/c/{channel}")
    await wait_connected(page)
    await page.evaluate(SAMPLE, ["levels", ".voice-level"])
    await page.evaluate(SAMPLE, ["progress", ".voice-progress"])

    # The level meter follows the voice the fake microphone plays; Cancel drops the recording.
    record = page.get_by_role("button", name="Record a voice memo")
    await record.click()
    recorder = page.get_by_role("group", name="Voice memo")
    await expect(recorder.locator(".voice-live")).to_contain_text("schedule", timeout=30_000)
    levels = [float(v) for v in await page.evaluate("window.levels")]
    assert max(levels) > 0.1 and len({round(v, 2) for v in levels}) >= 5, levels
    await recorder.get_by_role("button", name="Cancel recording").click()
    await expect(recorder).to_have_count(0)
    await expect(record).to_be_visible()

    # Recording again and sending it over a slow uplink: the upload shows how far it got.
    await record.click()
    await expect(recorder.locator(".voice-live")).to_contain_text("Tuesday", timeout=30_000)
    network = await context.new_cdp_session(page)
    await network.send("Network.enable")
    slow = {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 6 * 1024}
    await network.send("Network.emulateNetworkConditions", slow)
    await recorder.get_by_role("button", name="Send voice memo").click()
    await expect(recorder.get_by_role("progressbar", name="Uploading the voice memo")).to_be_visible()
    await expect(recorder).to_have_count(0, timeout=60_000)
    await network.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
    progress = [float(v) for v in await page.evaluate("window.progress")]
    assert any(0 < v < 1 for v in progress), progress
    assert progress == sorted(progress), progress

    # Only the memo that was sent exists: the cancelled one posted no message and no memo.
    created = await events_of(voice_server, seq, "voice.memo.created")
    assert len(created) == 1, created
    async with voice_server.client() as client:
        threads = (await client.get(f"/v1/channels/{channel}/threads")).json()["threads"]
    assert [t["root_message_id"] for t in threads] == [created[0]["payload"]["memo"]["message_id"]]
    await watched.assert_clean()
    await context.close()


async def test_a_refused_microphone_says_so(browser_with_microphone: Browser, voice_server: Server) -> None:
    context = await new_context(browser_with_microphone)  # the permission is not granted
    await sign_in(context, voice_server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{voice_server.url}/c/{voice_server.channel_id('general')}")
    await wait_connected(page)
    await page.get_by_role("button", name="Record a voice memo").click()
    alert = page.get_by_role("alert").filter(has_text="Microphone")
    await expect(alert).to_contain_text("refused")
    await watched.assert_clean()
    await context.close()


async def test_listen_reads_an_agent_reply_aloud(browser: Browser, voice_server: Server) -> None:
    _, thread_id = await open_thread(voice_server, "spacebot", "Tell me about yourself.")
    context = await new_context(browser)
    await sign_in(context, voice_server)
    watched = await new_page(context)
    page = watched.page
    await page.goto(f"{voice_server.url}/t/{thread_id}")
    await wait_connected(page)
    reply = page.locator("article.msg[data-author-kind=agent][data-state=completed]").last
    await expect(reply).to_contain_text("scripted agent", timeout=30_000)
    await reply.get_by_role("button", name="Listen to this reply").click()
    # The sentences are spoken one by one; then the reply's whole recording plays in the player.
    note = reply.locator(".voice-note[data-voice=transcribed]")
    await expect(note).to_be_visible(timeout=60_000)
    await expect(reply.get_by_role("button", name="Listen to this reply")).to_have_count(0)
    await expect(note.locator(".voice-transcript")).to_contain_text("scripted agent")
    await note.get_by_role("button", name="Play spoken reply").click()
    await expect(note).to_have_attribute("data-playing", "true")
    await wait_for_js(
        page, "Number(document.querySelector('article.msg[data-author-kind=agent] .voice-note').dataset.time) > 0.3"
    )
    await watched.assert_clean()
    await context.close()
