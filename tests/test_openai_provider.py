"""The OpenAI-compatible provider against a local server speaking that wire format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .fake_openai import REPLY, FakeOpenAI
from .support import Server, toml_config

pytestmark = pytest.mark.asyncio

SECRET = "sk-test-do-not-leak-4f9a"


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


def agent_config(model: FakeOpenAI) -> str:
    return toml_config(
        f"""
[providers.local]
kind = "openai"
base_url = "{model.url}"
api_key = "{SECRET}"

[[agents]]
id = "llama"
name = "Llama"
provider = "local"
model = "local-model-7b"
channels = ["spacebot"]
system_prompt = "Be brief."
"""
    )


async def converse(server: Server, text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Post in #spacebot and wait for the agent's reply to finish; return it and the thread's events."""
    spacebot = server.channel_id("spacebot")
    async with server.client() as client:
        posted = (await client.post(f"/v1/channels/{spacebot}/messages", json={"text": text})).json()
        thread_id = posted["thread"]["id"]
        async with asyncio.timeout(15):
            while True:
                history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
                replies = [
                    m for m in history if m["author"]["kind"] == "agent" and m["state"] in ("completed", "failed")
                ]
                if replies:
                    break
                await asyncio.sleep(0.05)
        seq = posted["message"]["seq"]
        events = []
        async with client.stream("GET", "/v1/realtime/sse", params={"after": seq - 1}) as stream:
            buffer = ""
            async for chunk in stream.aiter_text():
                buffer += chunk
                if "event: ready" in buffer:
                    break
        for block in buffer.split("\n\n"):
            data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
            if data and "event: " not in block:
                events.append(json.loads(data[0]))
    return replies[0], [e for e in events if e["thread_id"] == thread_id]


async def test_streams_reply_and_records_usage(tmp_path: Path, model: FakeOpenAI) -> None:
    server = Server(tmp_path / "data", agent_config(model)).start()
    try:
        reply, events = await converse(server, "hello there")
        assert reply["state"] == "completed"
        assert reply["text"] == REPLY
        assert reply["author"] == {"kind": "agent", "id": "llama"}
        request = model.requests[0]
        assert request["model"] == "local-model-7b"
        assert request["stream"] is True and request["stream_options"] == {"include_usage": True}
        assert request["messages"][0] == {"role": "system", "content": "Be brief."}
        assert request["messages"][-1]["content"].endswith("hello there")
        assert model.headers[0]["Authorization"] == f"Bearer {SECRET}"
        usage = next(e for e in events if e["event_type"] == "agent.token.usage")["payload"]
        assert usage["model"] == "local-model-7b" and usage["provider"] == "local"
        assert (
            usage["input_tokens"],
            usage["cache_read_tokens"],
            usage["output_tokens"],
            usage["reasoning_tokens"],
        ) == (20, 100, 12, 3)
        assert usage["message_id"] == reply["id"]
        types = [e["event_type"] for e in events]
        assert types.index("message.created") < types.index("agent.token.usage") < types.index("message.completed")
        # the provider's key never reaches logs, events or the database
        assert SECRET not in "".join(server.output)
        assert SECRET.encode() not in server.stored_bytes()
        assert SECRET not in json.dumps(events)
    finally:
        server.stop()


async def test_tool_call_fragments_are_assembled(tmp_path: Path, model: FakeOpenAI) -> None:
    server = Server(tmp_path / "data", agent_config(model)).start()
    try:
        reply, events = await converse(server, "what time is it")
        assert reply["state"] == "completed"
        assert reply["text"].startswith("The tool said ") and "UTC" in reply["text"]
        second = model.requests[1]["messages"]
        assert second[-2]["tool_calls"][0]["function"] == {"name": "current_time", "arguments": "{}"}
        assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "call_abc"
        types = [e["event_type"] for e in events]
        assert types.count("agent.token.usage") == 2
        assert "tool.completed" in types and "worker.completed" in types
    finally:
        server.stop()


async def test_provider_outage_fails_the_turn_and_reports_health(tmp_path: Path, model: FakeOpenAI) -> None:
    model.fail_with = 503
    server = Server(tmp_path / "data", agent_config(model)).start()
    try:
        reply, _ = await converse(server, "hello?")
        assert reply["state"] == "failed"
        assert reply["failure_reason"] == "error"
        assert "HTTP 503" in reply["error"]
        async with server.client() as client:
            everything = []
            async with client.stream("GET", "/v1/realtime/sse", params={"after": 0}) as stream:
                buffer = ""
                async for chunk in stream.aiter_text():
                    buffer += chunk
                    if "event: ready" in buffer:
                        break
            everything = [json.loads(line[6:]) for line in buffer.split("\n") if line.startswith('data: {"seq')]
        health = [e["payload"] for e in everything if e["event_type"] == "system.health.changed"]
        assert health and health[0]["component"] == "provider:local" and health[0]["status"] == "down"
    finally:
        server.stop()


async def test_a_failed_reply_can_be_retried(tmp_path: Path, model: FakeOpenAI) -> None:
    model.fail_with = 503
    server = Server(tmp_path / "data", agent_config(model)).start()
    try:
        failed, _ = await converse(server, "hello?")
        assert failed["state"] == "failed"
        model.fail_with = None
        async with server.client() as client:
            retried = await client.post(f"/v1/messages/{failed['id']}/retry")
            assert retried.status_code == 202, retried.text
            assert retried.json()["message"]["metadata"]["superseded_by_turn"] == retried.json()["turn_id"]
            again = await client.post(f"/v1/messages/{failed['id']}/retry")
            assert again.status_code == 409 and again.json()["error"]["code"] == "already_retried"
            async with asyncio.timeout(15):
                while True:
                    history = (await client.get(f"/v1/threads/{failed['thread_id']}/history")).json()["messages"]
                    done = [m for m in history if m["author"]["kind"] == "agent" and m["state"] == "completed"]
                    if done:
                        break
                    await asyncio.sleep(0.05)
            assert done[0]["text"] == REPLY
            assert done[0]["metadata"]["turn_id"] == retried.json()["turn_id"]
            person = next(m for m in history if m["author"]["kind"] == "user")
            refused = await client.post(f"/v1/messages/{person['id']}/retry")
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_retryable"
    finally:
        server.stop()
