"""Stop: an agent's reply ends at once and keeps what it wrote, over HTTP with the embedded host
(a slow scripted stream). The bridge's stop is in test_bridge.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import Server, events_after, invite, toml_config, wait_for_message, wait_until

pytestmark = pytest.mark.asyncio

# 20 characters a second: the scripted reply (about 200 characters) takes ten seconds.
SLOW = toml_config(providers__scripted={"kind": "scripted", "chars_per_second": 20})


def streaming_reply(server: Server, thread_id: str) -> dict[str, Any]:
    """The agent's reply once it has streamed some text (a checkpoint saved it)."""
    return wait_for_message(
        server,
        thread_id,
        lambda m: m["author"]["kind"] == "agent" and m["state"] == "streaming" and len(m["text"]) > 10,
    )


async def test_stop_keeps_the_partial_text_and_records_usage(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", SLOW).start()
    try:
        member = invite(server, server.token, "member")
        other = invite(server, server.token, "member")
        with httpx.Client(base_url=server.url, headers=member.auth) as client:
            posted = client.post(f"/v1/channels/{server.channel_id('spacebot')}/messages", json={"text": "hello"})
            thread_id = posted.json()["thread"]["id"]
            reply = await asyncio.to_thread(streaming_reply, server, thread_id)
            with httpx.Client(base_url=server.url, headers=other.auth) as stranger:
                refused = stranger.post(f"/v1/messages/{reply['id']}/stop")
                assert refused.status_code == 403 and refused.json()["error"]["details"]["scope"] == "ops:retry"
            assert client.get(f"/v1/messages/{reply['id']}").json()["message"]["state"] == "streaming", (
                "nothing stopped"
            )
            stopped = client.post(f"/v1/messages/{reply['id']}/stop")
            assert stopped.status_code == 200, stopped.text
            message = stopped.json()["message"]
            assert message["state"] == "completed" and message["metadata"]["stop_reason"] == "stopped"
            assert message["metadata"]["stopped_by"] == member.id
            assert message["text"].startswith(reply["text"]) and len(message["text"]) < 150, "partial text kept"
            await asyncio.sleep(1.0)
            still = client.get(f"/v1/messages/{reply['id']}").json()["message"]
            assert still["text"] == message["text"] and still["state"] == "completed", "nothing more was written"
            again = client.post(f"/v1/messages/{reply['id']}/stop")
            assert again.status_code == 409 and again.json()["error"]["code"] == "not_streaming"
            person = client.post(f"/v1/messages/{posted.json()['message']['id']}/stop")
            assert person.status_code == 403, "a person's message is no reply of theirs to stop"
        with server.sync_client() as owner:
            usage = owner.get("/v1/usage", params={"group_by": "thread,user"}).json()["rows"]
            row = next(r for r in usage if r["thread"] == thread_id)
            assert row["requests"] == 1 and row["user"] == member.id
            assert row["output_tokens"] == len(message["text"]) // 4 and row["input_tokens"] > 0
            assert row["cost_usd"] is None and row["unpriced_requests"] == 1, "unpriced, never $0"
            turn = owner.get(f"/v1/threads/{thread_id}/metrics").json()["latency"]
            assert turn["turns"] == 1 and turn["failed"] == 0
            audit = owner.get("/v1/audit", params={"action": "agent.turn_stopped"}).json()["entries"]
            assert audit[0]["actor"]["id"] == member.id and audit[0]["target"]["id"] == reply["id"]
        events = events_after(server, 0)
        completed = [
            e for e in events if e["event_type"] == "message.completed" and e["payload"]["message"]["id"] == reply["id"]
        ]
        assert completed[0]["payload"]["reason"] == "stopped"
        with server.sync_client() as owner:
            steps = owner.get(f"/v1/threads/{thread_id}/timeline").json()["steps"]
        assert [s["kind"] for s in steps] == ["message", "turn_started", "model_call", "stop"]
    finally:
        server.stop()


async def test_an_operator_may_stop_anyones_reply(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", SLOW).start()
    try:
        operator = invite(server, server.token, "operator")
        with server.sync_client() as owner:
            thread_id = owner.post(
                f"/v1/channels/{server.channel_id('spacebot')}/messages", json={"text": "hi"}
            ).json()["thread"]["id"]
        reply = await asyncio.to_thread(streaming_reply, server, thread_id)
        with httpx.Client(base_url=server.url, headers=operator.auth) as client:
            stopped = client.post(f"/v1/messages/{reply['id']}/stop")
            assert stopped.status_code == 200 and stopped.json()["message"]["metadata"]["stopped_by"] == operator.id
        # The agent answers the next message as usual.
        with server.sync_client() as owner:
            owner.post(f"/v1/threads/{thread_id}/messages", json={"text": "again"})
            wait_until(
                lambda: (
                    sum(
                        1
                        for m in owner.get(f"/v1/threads/{thread_id}/history").json()["messages"]
                        if m["author"]["kind"] == "agent"
                    )
                    == 2
                )
            )
    finally:
        server.stop()
