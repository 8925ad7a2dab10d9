"""Realtime tenancy: a subscriber never receives another organisation's events, nor those of a
private channel it is not in, live or replayed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from .support import Server, invite

pytestmark = pytest.mark.asyncio


async def collect(
    server: Server,
    headers: dict[str, str],
    *,
    after: int | None = None,
    stop: Callable[[dict[str, Any]], bool] | None = None,
    ready: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    """The events of one SSE stream: with no `stop`, the replay (up to `ready`); with one, the
    events until the first that `stop` accepts. `ready` is set once the stream is live."""
    events: list[dict[str, Any]] = []
    params = {"after": after} if after is not None else {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        async with aconnect_sse(client, "GET", "/v1/realtime/sse", params=params) as source:
            async with asyncio.timeout(30):
                async for event in source.aiter_sse():
                    if event.event == "ready":
                        if ready is not None:
                            ready.set()
                        if stop is None:
                            break
                    elif event.event == "message":
                        events.append(json.loads(event.data))
                        if stop is not None and stop(events[-1]):
                            break
    return events


async def listen(
    server: Server, headers: dict[str, str], stop: Callable[[dict[str, Any]], bool]
) -> asyncio.Task[list[dict[str, Any]]]:
    """A live subscriber, connected: what it collects until `stop` is the task's result."""
    ready = asyncio.Event()
    task = asyncio.create_task(collect(server, headers, stop=stop, ready=ready))
    async with asyncio.timeout(30):
        await ready.wait()
    return task


def text_is(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event_type"] == "message.created" and e["payload"]["message"]["text"] == text


async def post(server: Server, person_headers: dict[str, str], channel_id: str, text: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers=person_headers) as client:
        response = await client.post(f"/v1/channels/{channel_id}/messages", json={"text": text})
        assert response.status_code == 201, response.text
        return dict(response.json()["message"])


async def test_subscribers_see_only_what_they_may(server: Server) -> None:
    owner = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=owner) as client:
        other_org = (await client.post("/v1/orgs", json={"name": "Globex"})).json()
        private = (await client.post("/v1/channels", json={"name": "board", "private": True})).json()["channel"]
        guest_room = (await client.post("/v1/channels", json={"name": "vendors"})).json()["channel"]
    async with httpx.AsyncClient(base_url=server.url) as client:
        b_owner = await client.post(
            "/v1/auth/setup",
            json={
                "token": other_org["setup_token"],
                "email": "b@globex.com",
                "name": "B",
                "password": "globex passphrase",
                "return_token": True,
            },
        )
    b_headers = {"Authorization": f"Bearer {b_owner.json()['session_token']}"}
    async with httpx.AsyncClient(base_url=server.url, headers=b_headers) as client:
        b_general = next(c for c in (await client.get("/v1/channels")).json()["channels"] if c["name"] == "general")
    member = invite(server, server.token, "member")
    guest = invite(server, server.token, "guest", channel_ids=[guest_room["id"]])
    general = server.channel_id("general")

    # Events reach each subscriber in the log's order: once its last visible message arrives,
    # anything posted before it that it may not see would have arrived already.
    listeners = {
        "member": await listen(server, member.auth, text_is("for vendors")),
        "guest": await listen(server, guest.auth, text_is("for vendors")),
        "b": await listen(server, b_headers, text_is("globex only")),
    }
    await post(server, owner, general, "public news")
    await post(server, owner, private["id"], "board only")
    await post(server, owner, guest_room["id"], "for vendors")
    await post(server, b_headers, b_general["id"], "globex only")
    live = {name: await task for name, task in listeners.items()}

    def seen(events: list[dict[str, Any]]) -> set[str]:
        return {e["payload"]["message"]["text"] for e in events if e["event_type"] == "message.created"}

    assert seen(live["member"]) == {"public news", "for vendors"}
    assert seen(live["guest"]) == {"for vendors"}
    assert seen(live["b"]) == {"globex only"}
    assert all(e["org_id"] == b_general["org_id"] for e in live["b"])
    assert not any(e["channel_id"] == private["id"] for e in live["member"] + live["guest"])

    # the same on replay from the beginning of the log
    replayed = {
        "member": await collect(server, member.auth, after=0),
        "guest": await collect(server, guest.auth, after=0),
        "b": await collect(server, b_headers, after=0),
    }
    assert seen(replayed["member"]) == {"public news", "for vendors"}
    assert seen(replayed["guest"]) == {"for vendors"}
    assert seen(replayed["b"]) == {"globex only"}
    assert not any(
        e["event_type"] == "channel.created" and e["channel_id"] == private["id"] for e in replayed["member"]
    )

    # added to the private channel: sees it from the moment of joining, live
    listener = await listen(server, member.auth, text_is("after the welcome"))
    async with httpx.AsyncClient(base_url=server.url, headers=owner) as client:
        added = await client.post(f"/v1/channels/{private['id']}/members", json={"user_id": member.id})
        assert added.status_code == 201
    await post(server, owner, private["id"], "welcome aboard")
    await post(server, owner, general, "after the welcome")
    after_join = await listener
    assert [e["event_type"] for e in after_join if e["channel_id"] == private["id"]] == [
        "member.added",
        "message.created",
        "thread.created",
    ]
    assert seen(after_join) == {"welcome aboard", "after the welcome"}
