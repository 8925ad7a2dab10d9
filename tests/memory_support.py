"""Helpers for the memory tests (issue 12): a server with people and channels under chosen
policies, ways to make each source produce something, and waits that end on what the server did
(the ingestion follows the log in order, so a sentinel's candidate means everything before it was
seen), never on sleeps."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .support import Person, Server, invite, wait_until

POLL = {
    "type": "poll",
    "block_id": "drink",
    "question": "Tea or coffee at the offsite?",
    "options": [{"label": "Tea", "value": "tea"}, {"label": "Coffee", "value": "coffee"}],
}


@dataclass
class World:
    server: Server
    owner: httpx.Client
    people: dict[str, Person] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)

    def client(self, person: Person) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=person.auth, timeout=30)

    def host_memories(self) -> list[dict[str, Any]]:
        """What the embedded host's own memory journal holds (the agent's store)."""
        path = Path(self.server.data_dir) / "host-memories.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_channel(owner: httpx.Client, name: str, **policy: Any) -> str:
    created = owner.post("/v1/channels", json={"name": f"{name}-{secrets.token_hex(3)}"})
    assert created.status_code == 201, created.text
    channel_id = str(created.json()["channel"]["id"])
    if policy:
        put = owner.put(f"/v1/memory/policies/channel/{channel_id}", json=policy)
        assert put.status_code == 200, put.text
    return channel_id


def person(server: Server, name: str, consent: str | None = None) -> Person:
    someone = invite(server, server.token, "member", name=name)
    if consent is not None:
        with httpx.Client(base_url=server.url, headers=someone.auth) as client:
            assert client.put("/v1/me/memory/consent", json={"consent": consent}).status_code == 200
    return someone


def candidates(owner: httpx.Client, status: str = "pending") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        page = owner.get(
            "/v1/memory/candidates", params={"status": status, "limit": 200, **({"after": after} if after else {})}
        )
        assert page.status_code == 200, page.text
        found.extend(page.json()["candidates"])
        after = page.json()["next"]
        if after is None:
            return found


def memories(owner: httpx.Client) -> list[dict[str, Any]]:
    listed = owner.get("/v1/memories", params={"limit": 200})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["memories"])


def sentinel(world: World) -> None:
    """Wait until the ingestion has seen everything logged before now."""
    channel = world.channels["sentinel"]
    text = f"sentinel {secrets.token_hex(4)}"
    assert world.owner.post(f"/v1/channels/{channel}/messages", json={"text": text}).status_code == 201
    wait_until(lambda: any(c["content"] == text for c in candidates(world.owner)), timeout=20)


def agent_reply(client: httpx.Client, thread_id: str) -> str:
    """The agent's completed reply in a thread."""

    def done() -> str | None:
        history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
        replies = [m for m in history if m["author"]["kind"] == "agent" and m["state"] == "completed"]
        return replies[-1]["text"] if replies else None

    return str(wait_until(done, timeout=20))


def trigger(world: World, source: str, someone: Person, channel_id: str, tag: str) -> str:
    """Make `someone` cause a `source` in the channel; return what the agent answered, if an agent did."""
    with world.client(someone) as client:
        if source == "agent":
            posted = client.post(
                f"/v1/channels/{channel_id}/messages",
                json={"text": f"@spacebot remember that the {tag} code word is heron"},
            )
            assert posted.status_code == 201, posted.text
            return agent_reply(client, posted.json()["thread"]["id"])
        if source == "message":
            posted = client.post(f"/v1/channels/{channel_id}/messages", json={"text": f"the {tag} plan is ready"})
            assert posted.status_code == 201, posted.text
        elif source == "interaction":
            card = world.owner.post(f"/v1/channels/{channel_id}/messages", json={"text": "vote", "blocks": [POLL]})
            assert card.status_code == 201, card.text
            voted = client.post(
                "/v1/interactions",
                json={
                    "message_id": card.json()["message"]["id"],
                    "action_id": "vote",
                    "block_id": "drink",
                    "values": ["tea"],
                },
            )
            assert voted.status_code in (200, 201), voted.text
        else:
            task = client.post("/v1/tasks", json={"title": f"{tag} checklist", "channel_id": channel_id})
            assert task.status_code == 201, task.text
            moved = client.patch(f"/v1/tasks/{task.json()['task']['id']}", json={"status": "ready"})
            assert moved.status_code == 200, moved.text
    sentinel(world)
    return ""
