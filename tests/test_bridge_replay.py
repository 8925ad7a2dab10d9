"""A recorded sequence of Spacebot's real event shapes (tests/golden/spacebot/turn.sse), replayed
into `spacechat serve` in bridge mode: the canonical events that come out of it, in order."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.host.sse import SSEParser

from .fake_spacebot import FakeSpacebot
from .support import Server, events_after, toml_config
from .test_bridge import TOKEN, until

RECORDED = Path(__file__).parent / "golden" / "spacebot" / "turn.sse"


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    """What a reader of the thread sees of a canonical event."""
    kind, payload = event["event_type"], event["payload"]
    if kind.startswith("message."):
        message = payload.get("message") or {}
        return (kind, message.get("author", {}).get("kind"), message.get("state"), message.get("text"))
    if kind.startswith("tool."):
        return (kind, payload["tool"], payload.get("worker_id") is not None)
    if kind.startswith("worker."):
        return (kind, payload.get("state") or payload.get("outcome") or payload.get("task"))
    if kind == "agent.status.changed":
        return (kind, payload["status"], payload.get("detail") if payload["status"] != "thinking" else None)
    return (kind,)


@pytest.mark.slow
async def test_a_recorded_turn_becomes_the_canonical_events(tmp_path: Path) -> None:
    fake = await FakeSpacebot(TOKEN, ping_seconds=0.2).start()
    fake.replying = False
    server = Server(
        tmp_path / "data", toml_config(runtime={"mode": "bridge"}, bridge={"url": fake.url, "token": TOKEN})
    )
    await asyncio.to_thread(server.start)
    try:
        async with server.client() as client:
            await until(lambda: fake.listeners > 0, timeout=15)
            channel = server.channel_id("spacebot")
            posted = await client.post(f"/v1/channels/{channel}/messages", json={"text": "what day is it?"})
            assert posted.status_code == 201, posted.text
            thread = posted.json()["thread"]["id"]
            await until(lambda: len(fake.sent) == 1)
            names = {"{session}": f"portal:chat:spacebot:{channel}:{thread}", "{worker}": str(uuid.uuid4())}
            frames = SSEParser().feed(RECORDED.read_bytes())
            assert len(frames) == 23
            for name, data in frames:
                for placeholder, value in names.items():
                    data = data.replace(placeholder, value)
                fake.emit_raw(name, data)

            def the_thread() -> list[dict[str, Any]]:
                return [e for e in events_after(server, 0) if e.get("thread_id") == thread]

            async with asyncio.timeout(15):
                while not any(e["payload"].get("detail") == "compacted" for e in await asyncio.to_thread(the_thread)):
                    await asyncio.sleep(0.05)
            seen = [summary(e) for e in await asyncio.to_thread(the_thread)]
    finally:
        await asyncio.to_thread(server.stop)
        await fake.stop()
    # The routing tools (spawn_worker, reply) are no tool runs; reasoning and deltas are live only;
    # the notification, the config reload, the unknown and the malformed frame leave no trace.
    assert seen == [
        ("message.created", "user", "completed", "what day is it?"),
        ("thread.created",),
        ("message.created", "agent", "created", ""),
        ("agent.status.changed", "thinking", None),
        ("worker.started", "look up the date"),
        ("worker.status", "running"),
        ("tool.started", "shell", True),
        ("tool.completed", "shell", True),
        ("worker.completed", "succeeded"),
        ("message.completed", "agent", "completed", "It is Tuesday."),
        ("agent.status.changed", "idle", None),
        ("agent.status.changed", "compacting", "background"),
        ("agent.status.changed", "idle", "compacted"),
    ]
