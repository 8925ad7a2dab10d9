"""SIGKILL in the middle of work: acknowledged writes survive, nothing doubles, streams end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import Server, toml_config

pytestmark = pytest.mark.asyncio


def messages_by_text(server: Server) -> dict[str, int]:
    return {str(text): int(count) for text, count in server.query("SELECT text, COUNT(*) FROM messages GROUP BY text")}


async def test_kill_during_a_burst_of_sends(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config(runtime={"mode": "none"})).start()
    try:
        general = server.channel_id("general")
        acked: dict[str, str] = {}
        attempted: list[str] = []
        stop = asyncio.Event()

        async def sender(worker: int) -> None:
            async with server.client() as client:
                i = 0
                while not stop.is_set():
                    text = f"w{worker}-{i}"
                    attempted.append(text)
                    try:
                        response = await client.post(
                            f"/v1/channels/{general}/messages", json={"text": text}, headers={"Idempotency-Key": text}
                        )
                    except httpx.HTTPError:
                        return
                    if response.status_code == 201:
                        acked[text] = response.json()["message"]["id"]
                    i += 1

        senders = [asyncio.create_task(sender(w)) for w in range(16)]
        async with asyncio.timeout(30):
            while len(acked) < 60:
                await asyncio.sleep(0.05)
        server.kill()  # SIGKILL while requests are in flight
        stop.set()
        await asyncio.gather(*senders)
        assert len(acked) > 50
        server.start()
        counts = messages_by_text(server)
        assert all(counts.get(text) == 1 for text in acked), "an acknowledged message is missing"
        assert all(n == 1 for n in counts.values()), "a message was stored twice"
        async with server.client() as client:
            for text, message_id in list(acked.items())[:20]:
                assert (await client.get(f"/v1/messages/{message_id}")).json()["message"]["text"] == text
            # Retrying every attempted send with its key never doubles anything.
            for text in attempted[-40:]:
                retry = await client.post(
                    f"/v1/channels/{general}/messages", json={"text": text}, headers={"Idempotency-Key": text}
                )
                assert retry.status_code == 201
                if text in acked:
                    assert retry.headers.get("idempotent-replayed") == "true"
                    assert retry.json()["message"]["id"] == acked[text]
        counts = messages_by_text(server)
        assert all(n == 1 for n in counts.values())
    finally:
        server.stop()


async def test_kill_during_an_agent_stream_marks_it_interrupted(tmp_path: Path) -> None:
    slow = toml_config(providers__scripted={"chars_per_second": 60})
    server = Server(tmp_path / "data", slow).start()
    try:
        spacebot = server.channel_id("spacebot")
        async with server.client() as client:
            posted = await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "tell me about yourself"})
            thread_id = posted.json()["thread"]["id"]

            async def reply() -> dict[str, Any] | None:
                history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
                agent = [m for m in history if m["author"]["kind"] == "agent"]
                return agent[0] if agent and len(agent[0]["text"]) > 20 else None

            async with asyncio.timeout(15):
                while (streaming := await reply()) is None:
                    await asyncio.sleep(0.1)
        assert streaming["state"] == "streaming"
        partial = streaming["text"]
        server.kill()
        server.start()
        async with server.client() as client:
            after = (await client.get(f"/v1/messages/{streaming['id']}")).json()["message"]
            assert after["state"] == "failed"
            assert after["failure_reason"] == "interrupted"
            assert after["text"].startswith(partial)
        # A client resuming from before the stream sees it end as interrupted.
        events = await _replay(server, streaming["seq"] - 1)
        failed = [e for e in events if e["event_type"] == "message.failed"]
        assert failed and failed[-1]["payload"]["reason"] == "interrupted"
        assert failed[-1]["payload"]["message"]["id"] == streaming["id"]
        # The restarted host has lost the turn, yet Retry runs the same input again.
        async with server.client() as client:
            retried = await client.post(f"/v1/messages/{streaming['id']}/retry")
            assert retried.status_code == 202, retried.text
            async with asyncio.timeout(30):
                while True:
                    history = (await client.get(f"/v1/threads/{streaming['thread_id']}/history")).json()["messages"]
                    done = [m for m in history if m["author"]["kind"] == "agent" and m["state"] == "completed"]
                    if done:
                        break
                    await asyncio.sleep(0.1)
        assert done[0]["metadata"]["in_reply_to"] == streaming["metadata"]["in_reply_to"]
        assert "tell me about yourself" in done[0]["text"]
    finally:
        server.stop()


async def _replay(server: Server, after: int) -> list[dict[str, Any]]:
    from httpx_sse import aconnect_sse

    events = []
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=10) as client:
        async with aconnect_sse(client, "GET", "/v1/realtime/sse", params={"after": after}) as source:
            async for event in source.aiter_sse():
                if event.event == "ready":
                    break
                if event.event == "message":
                    events.append(json.loads(event.data))
    return events
