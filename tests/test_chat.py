"""Editing, deleting and reacting (issue 13): who may do what by role, earlier versions only for
readers, the events live and replayed, agents' replies, and reactions reaching the agent."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fake_openai import FakeOpenAI
from .support import PNG_BYTES, Person, Server, events_after, invite, toml_config, wait_for_message, wait_until

ROLES_THAT_MODERATE = {"owner", "admin"}


class Live:
    """An SSE stream read on a thread: the events it delivers, live."""

    def __init__(self, server: Server, auth: dict[str, str]) -> None:
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._stop = False
        self._client = httpx.Client(base_url=server.url, headers=auth, timeout=None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.ready.wait(10)

    def _read(self) -> None:
        with self._client.stream("GET", "/v1/realtime/sse") as stream:
            buffer = ""
            for chunk in stream.iter_text():
                buffer += chunk
                *frames, buffer = buffer.split("\n\n")
                for frame in frames:
                    if "event: ready" in frame:
                        self.ready.set()
                    data = [line[6:] for line in frame.split("\n") if line.startswith("data: ")]
                    if data and "event: " not in frame:
                        self.events.append(json.loads(data[0]))
                if self._stop:
                    return

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]

    def wait(self, event_type: str, count: int = 1) -> list[dict[str, Any]]:
        return list(wait_until(lambda: len(self.of(event_type)) >= count and self.of(event_type)))

    def close(self) -> None:
        self._stop = True
        self._client.close()


@pytest.fixture(scope="module")
def people(shared_server: Server) -> dict[str, Person]:
    owner = Person(shared_server.owner, shared_server.token)
    found = {"owner": owner}
    for role in ("admin", "operator", "member", "guest"):
        found[role] = invite(shared_server, shared_server.token, role)
    return found


def place(server: Server, people: dict[str, Person]) -> dict[str, Any]:
    """A public channel everyone (the guest too) is in, with the owner's first message."""
    with server.sync_client() as client:
        channel = client.post("/v1/channels", json={"name": "c-" + secrets.token_hex(4)}).json()["channel"]
        for person in people.values():
            client.post(f"/v1/channels/{channel['id']}/members", json={"user_id": person.id})
        posted = client.post(f"/v1/channels/{channel['id']}/messages", json={"text": "the first version"}).json()
    return {"channel": channel, **posted}


def as_(server: Server, person: Person) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=person.auth, timeout=30)


@pytest.mark.parametrize("role", ["owner", "admin", "operator", "member", "guest"])
def test_only_the_author_edits_and_the_author_or_a_moderator_deletes(
    shared_server: Server, people: dict[str, Person], role: str
) -> None:
    spot = place(shared_server, people)
    person = people[role]
    with as_(shared_server, person) as client:
        # Their own message: they edit and delete it, whatever their role.
        own = client.post(f"/v1/threads/{spot['thread']['id']}/messages", json={"text": "mine"}).json()["message"]
        assert client.patch(f"/v1/messages/{own['id']}", json={"text": "mine, edited"}).status_code == 200
        assert client.delete(f"/v1/messages/{own['id']}").status_code == 200
        # Someone else's (the owner's root; for the owner, the member's reply).
        if role == "owner":
            with as_(shared_server, people["member"]) as member:
                other = member.post(f"/v1/threads/{spot['thread']['id']}/messages", json={"text": "theirs"}).json()
            target = other["message"]["id"]
        else:
            target = spot["message"]["id"]
        edit = client.patch(f"/v1/messages/{target}", json={"text": "not yours"})
        assert edit.status_code == 403 and edit.json()["error"]["code"] == "not_author"
        delete = client.delete(f"/v1/messages/{target}")
        if role in ROLES_THAT_MODERATE:
            assert delete.status_code == 200
            assert delete.json()["message"]["deleted_by"] == person.id
        else:
            assert delete.status_code == 403
            assert delete.json()["error"]["details"]["scope"] == "messages:moderate"
    with shared_server.sync_client() as owner:
        kept = owner.get(f"/v1/messages/{target}").json()["message"]
        assert (kept["deleted_at"] is not None) == (role in ROLES_THAT_MODERATE)
        if role in ROLES_THAT_MODERATE:
            audit = owner.get("/v1/audit", params={"action": "message.deleted"}).json()["entries"]
            assert any(e["target"]["id"] == target and e["actor"]["id"] == person.id for e in audit)


def test_edit_keeps_history_for_readers_only(shared_server: Server, people: dict[str, Person]) -> None:
    spot = place(shared_server, people)
    message_id = spot["message"]["id"]
    with shared_server.sync_client() as client:
        for text in ("the second version", "the third version"):
            assert client.patch(f"/v1/messages/{message_id}", json={"text": text}).status_code == 200
        message = client.get(f"/v1/messages/{message_id}").json()["message"]
        assert message["text"] == "the third version" and message["edited_at"] is not None
        versions = client.get(f"/v1/messages/{message_id}/edits").json()["versions"]
        assert [v["text"] for v in versions] == ["the first version", "the second version"]
        # The thread's title follows its first message.
        assert client.get(f"/v1/threads/{spot['thread']['id']}").json()["thread"]["title"] == "the third version"
        # Someone who may not read the channel: it does not exist for them.
        private = client.post("/v1/channels", json={"name": "h-" + secrets.token_hex(4), "private": True}).json()
        hidden = client.post(f"/v1/channels/{private['channel']['id']}/messages", json={"text": "v1"}).json()
        client.patch(f"/v1/messages/{hidden['message']['id']}", json={"text": "v2"})
    with as_(shared_server, people["member"]) as member:
        assert member.get(f"/v1/messages/{message_id}/edits").status_code == 200
        refused = member.get(f"/v1/messages/{hidden['message']['id']}/edits")
        assert refused.status_code == 404
        assert member.patch(f"/v1/messages/{hidden['message']['id']}", json={"text": "x"}).status_code == 404


def test_deleting_leaves_a_tombstone_and_forgets_the_versions(shared_server: Server, people: dict[str, Person]) -> None:
    spot = place(shared_server, people)
    message_id = spot["message"]["id"]
    with shared_server.sync_client() as client:
        client.patch(f"/v1/messages/{message_id}", json={"text": "edited once"})
        client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": "🎉"})
        tombstone = client.delete(f"/v1/messages/{message_id}").json()["message"]
        assert tombstone["text"] == "" and tombstone["reactions"] == [] and tombstone["deleted_at"]
        history = client.get(f"/v1/threads/{spot['thread']['id']}/history").json()["messages"]
        assert [m["id"] for m in history] == [message_id]  # its place in the thread stays
        assert client.get(f"/v1/messages/{message_id}/edits").json()["versions"] == []
        assert client.patch(f"/v1/messages/{message_id}", json={"text": "back"}).status_code == 409
        again = client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": "🎉"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "message_deleted"
        assert client.delete(f"/v1/messages/{message_id}").status_code == 200  # deleting twice is harmless


def test_a_deleted_messages_files_are_no_longer_served(shared_server: Server, people: dict[str, Person]) -> None:
    spot = place(shared_server, people)
    with shared_server.sync_client() as client:
        upload = client.post(
            "/v1/uploads", params={"filename": "p.png"}, content=PNG_BYTES, headers={"Content-Type": "image/png"}
        ).json()["attachment"]
        posted = client.post(
            f"/v1/threads/{spot['thread']['id']}/messages", json={"text": "see", "attachments": [upload["id"]]}
        ).json()
        assert client.get(f"/v1/attachments/{upload['id']}").status_code == 200
        assert client.delete(f"/v1/messages/{posted['message']['id']}").status_code == 200
        assert client.get(f"/v1/attachments/{upload['id']}").status_code == 404


def test_bad_edits_and_reactions_change_nothing(shared_server: Server, people: dict[str, Person]) -> None:
    spot = place(shared_server, people)
    message_id = spot["message"]["id"]
    with shared_server.sync_client() as client:
        for body in ({"text": ""}, {"text": 5}, {"text": "x" * 40_001}, {"text": "ok", "extra": 1}):
            assert client.patch(f"/v1/messages/{message_id}", json=body).status_code == 400
        for emoji in ("a", "👍👍", ":no_such_emoji_alias:", "", "<script>"):
            response = client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": emoji})
            assert response.status_code == 400, emoji
        assert client.delete(f"/v1/messages/{message_id}/reactions").status_code == 400
        assert client.patch("/v1/messages/msg_nope", json={"text": "x"}).status_code == 404
        message = client.get(f"/v1/messages/{message_id}").json()["message"]
    assert message["text"] == "the first version" and message["reactions"] == [] and message["edited_at"] is None


def test_reactions_count_who_and_are_idempotent(shared_server: Server, people: dict[str, Person]) -> None:
    spot = place(shared_server, people)
    message_id = spot["message"]["id"]
    for role in ("member", "guest", "owner"):
        with as_(shared_server, people[role]) as client:
            first = client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": ":+1:"})
            assert first.status_code == 201 and first.json()["emoji"] == "👍"
            assert client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": "👍"}).status_code == 200
    with as_(shared_server, people["member"]) as client:
        client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": "🚀"})
        assert client.delete(f"/v1/messages/{message_id}/reactions", params={"emoji": "👍"}).status_code == 204
        assert client.delete(f"/v1/messages/{message_id}/reactions", params={"emoji": "👍"}).status_code == 204
        reactions = client.get(f"/v1/messages/{message_id}").json()["message"]["reactions"]
    assert reactions == [
        {"emoji": "👍", "count": 2, "user_ids": [people["guest"].id, people["owner"].id]},
        {"emoji": "🚀", "count": 1, "user_ids": [people["member"].id]},
    ]


def test_events_are_live_and_replayed(shared_server: Server, people: dict[str, Person]) -> None:
    spot = place(shared_server, people)
    message_id = spot["message"]["id"]
    watcher = Live(shared_server, people["member"].auth)
    try:
        with shared_server.sync_client() as client:
            start = client.get("/v1/me").json()["seq"]
            client.patch(f"/v1/messages/{message_id}", json={"text": "live edit"})
            client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": "✅"})
            client.delete(f"/v1/messages/{message_id}/reactions", params={"emoji": "✅"})
            client.delete(f"/v1/messages/{message_id}")
        (updated,) = watcher.wait("message.updated")
        assert updated["payload"]["change"] == "edited" and updated["payload"]["message"]["text"] == "live edit"
        (added,) = watcher.wait("reaction.added")
        assert added["payload"]["emoji"] == "✅" and added["payload"]["reactions"][0]["count"] == 1
        (removed,) = watcher.wait("reaction.removed")
        assert removed["payload"]["reactions"] == []
        (deleted,) = watcher.wait("message.deleted")
        assert deleted["payload"]["message"]["deleted_at"] and deleted["payload"]["message"]["text"] == ""
    finally:
        watcher.close()
    live = [(e["seq"], e["event_type"]) for e in watcher.events if e["seq"] and e["seq"] > start]
    replayed = [(e["seq"], e["event_type"]) for e in events_after(shared_server, start, people["member"].auth)]
    assert replayed[: len(live)] == live
    assert [kind for _, kind in live] == ["message.updated", "reaction.added", "reaction.removed", "message.deleted"]
    # Nobody outside the channel hears any of it.
    outsider = invite(shared_server, shared_server.token, "guest")
    assert not [
        e for e in events_after(shared_server, start, outsider.auth) if e["channel_id"] == spot["channel"]["id"]
    ]


# --- agents' replies ------------------------------------------------------------------------------


def llama_config(model: FakeOpenAI) -> str:
    return toml_config(
        f"""
[providers.local]
kind = "openai"
base_url = "{model.url}"
api_key = "sk-test"

[[agents]]
id = "llama"
name = "Llama"
provider = "local"
model = "local-model"
channels = ["spacebot"]
"""
    )


@pytest.fixture
async def model() -> Any:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


@pytest.mark.slow
async def test_a_reaction_on_an_agents_reply_reaches_the_agent(tmp_path: Path, model: FakeOpenAI) -> None:
    """The reaction goes out as `spacechat_reaction_changed`; the embedded host hands it to the
    agent, whose next turn in the thread sees it in its context. People cannot edit the reply."""
    server = await asyncio.to_thread(Server(tmp_path / "data", llama_config(model)).start)
    try:
        spacebot = await asyncio.to_thread(server.channel_id, "spacebot")
        async with server.client() as client:
            posted = (await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "hello"})).json()
            thread_id = posted["thread"]["id"]
            reply = await asyncio.to_thread(
                wait_for_message,
                server,
                thread_id,
                lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed",
            )
            edit = await client.patch(f"/v1/messages/{reply['id']}", json={"text": "put words in its mouth"})
            assert edit.status_code == 403 and edit.json()["error"]["code"] == "not_author"
            assert (await client.post(f"/v1/messages/{reply['id']}/reactions", json={"emoji": "👎"})).status_code == 201
            asked = len(model.requests)
            await client.post(f"/v1/threads/{thread_id}/messages", json={"text": "try again please"})
            async with asyncio.timeout(15):
                while len(model.requests) <= asked:
                    await asyncio.sleep(0.05)
        context = json.dumps(model.requests[asked]["messages"], ensure_ascii=False)
        assert "[feedback] Olive Owner reacted 👎 on your reply" in context
        assert context.index("👎") < context.index("try again please")
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_reaction_hook_carries_the_reaction_and_the_agent() -> None:
    """The hookspec's contract, through a plugin that records `spacechat_reaction_changed`."""
    import pluggy

    from spacechat_plugin import hookspecs

    from .hookrecorder import Recorder

    recorder = Recorder()
    pm = pluggy.PluginManager("spacebot")
    pm.add_hookspecs(hookspecs)
    pm.register(recorder)
    hooks = hookspecs.PluginHooks(pm, on_error=lambda name, impl, error: None)
    reaction = {"message_id": "msg_1", "emoji": "👍", "action": "added", "agent_id": "llama", "user": {"id": "u"}}
    await hooks.call("spacechat_reaction_changed", reaction=reaction, message={"id": "msg_1"})
    (call,) = await recorder.wait_for("spacechat_reaction_changed")
    assert call["reaction"]["agent_id"] == "llama" and call["message"] == {"id": "msg_1"}
