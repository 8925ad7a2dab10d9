"""Realtime tenancy: a subscriber never receives another organisation's events, nor those of a
private channel it is not in, live or replayed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from .support import Server, invite

pytestmark = pytest.mark.asyncio


async def collect(
    server: Server, headers: dict[str, str], *, after: int | None, seconds: float
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    params = {"after": after} if after is not None else {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        async with aconnect_sse(client, "GET", "/v1/realtime/sse", params=params) as source:
            try:
                async with asyncio.timeout(seconds):
                    async for event in source.aiter_sse():
                        if event.event == "message":
                            events.append(json.loads(event.data))
            except TimeoutError:
                pass
    return events


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

    listeners = {
        "member": asyncio.create_task(collect(server, member.auth, after=None, seconds=3)),
        "guest": asyncio.create_task(collect(server, guest.auth, after=None, seconds=3)),
        "b": asyncio.create_task(collect(server, b_headers, after=None, seconds=3)),
    }
    await asyncio.sleep(0.5)
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
        "member": await collect(server, member.auth, after=0, seconds=1.5),
        "guest": await collect(server, guest.auth, after=0, seconds=1.5),
        "b": await collect(server, b_headers, after=0, seconds=1.5),
    }
    assert seen(replayed["member"]) == {"public news", "for vendors"}
    assert seen(replayed["guest"]) == {"for vendors"}
    assert seen(replayed["b"]) == {"globex only"}
    assert not any(
        e["event_type"] == "channel.created" and e["channel_id"] == private["id"] for e in replayed["member"]
    )

    # added to the private channel: sees it from the moment of joining, live
    listener = asyncio.create_task(collect(server, member.auth, after=None, seconds=3))
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=server.url, headers=owner) as client:
        added = await client.post(f"/v1/channels/{private['id']}/members", json={"user_id": member.id})
        assert added.status_code == 201
    await post(server, owner, private["id"], "welcome aboard")
    after_join = await listener
    assert [e["event_type"] for e in after_join if e["channel_id"] == private["id"]] == [
        "member.added",
        "message.created",
        "thread.created",
    ]
    assert seen(after_join) == {"welcome aboard"}
