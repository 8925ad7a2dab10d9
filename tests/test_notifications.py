"""Notifications (issue 13): the rule, per-channel levels stored server-side, and delivery to
one person's streams only, through their stream's own permission check."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from spacechat_plugin.notifications import rule

from .listen import Listener
from .support import Person, Server, invite, other_org_owner

# --- the rule ------------------------------------------------------------------------------------

PUBLIC = {"id": "ch_1", "kind": "channel"}
DM = {"id": "ch_2", "kind": "dm"}


def message(author: str = "usr_a", **extra: Any) -> dict[str, Any]:
    return {"id": "msg_1", "author": {"kind": "user", "id": author}, **extra}


@pytest.mark.parametrize(
    ("msg", "channel", "level", "follows", "expected"),
    [
        (message(mentions=["usr_b"]), PUBLIC, "mentions", False, "mention"),
        (message(mentions=[{"id": "usr_b", "name": "B"}]), PUBLIC, "mentions", False, "mention"),
        (message(), DM, "mentions", False, "dm"),
        (message(), PUBLIC, "mentions", True, "reply"),
        (message(), PUBLIC, "mentions", False, None),
        (message(), PUBLIC, "all", False, "message"),
        (message(mentions=["usr_b"]), PUBLIC, "muted", True, None),
        (message(), DM, "muted", False, None),
        (message(author="usr_b", mentions=["usr_b"]), DM, "all", True, None),  # never your own
    ],
)
def test_the_rule(
    msg: dict[str, Any], channel: dict[str, Any], level: str, follows: bool, expected: str | None
) -> None:
    assert rule.reason(msg, channel, "usr_b", level=level, follows_thread=follows) == expected


def test_excerpt_is_one_short_line() -> None:
    assert rule.excerpt("a\n\nb   c") == "a b c"
    assert len(rule.excerpt("x" * 500)) == rule.EXCERPT_CHARS and rule.excerpt("x" * 500).endswith("…")


# --- over HTTP and the realtime stream -------------------------------------------------------------


def notified(listener: Listener, message_id: str) -> list[dict[str, Any]]:
    return [e for e in listener.of_type("notification.created") if e["payload"]["message"]["id"] == message_id]


async def post(server: Server, person: Person | None, path: str, text: str) -> dict[str, Any]:
    headers = person.auth if person is not None else server.auth
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        response = await client.post(path, json={"text": text})
        assert response.status_code == 201, response.text
        return dict(response.json()["message"])


async def set_level(server: Server, person: Person, channel_id: str, level: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, headers=person.auth, timeout=30) as client:
        return await client.put(f"/v1/channels/{channel_id}/notifications", json={"level": level})


async def test_replies_in_my_thread_notify_me_and_muting_stops_it(server: Server) -> None:
    general = server.channel_id("general")
    ops = server.channel_id("ops")
    starter = invite(server, server.token, "member", name="Stella Starter")
    replier = invite(server, server.token, "member", name="Rex Replier")
    bystander = invite(server, server.token, "member", name="Bea Bystander")
    root = await post(server, starter, f"/v1/channels/{general}/messages", "Who can review the release notes?")
    elsewhere = await post(server, starter, f"/v1/channels/{ops}/messages", "Ops question")
    async with Listener(server, starter.auth) as mine, Listener(server, bystander.auth) as theirs:
        reply = await post(server, replier, f"/v1/threads/{root['thread_id']}/messages", "I can, after lunch")
        got = await mine.wait_for(lambda e: e["event_type"] == "notification.created")
        assert got["payload"]["reason"] == "reply" and got["payload"]["message"]["id"] == reply["id"]
        assert got["payload"]["message"]["text"] == "I can, after lunch"
        assert got["payload"]["channel_name"] == "general"
        assert got["payload"]["thread_title"] == "Who can review the release notes?"
        assert got["seq"] is None and got["thread_id"] == root["thread_id"]

        # Muted: the next reply in general says nothing; a reply in ops still does (and comes after).
        answer = await set_level(server, starter, general, "muted")
        assert answer.status_code == 200 and answer.json() == {"channel_id": general, "level": "muted"}
        quiet = await post(server, replier, f"/v1/threads/{root['thread_id']}/messages", "Done, have a look")
        loud = await post(server, replier, f"/v1/threads/{elsewhere['thread_id']}/messages", "On it")
        await mine.wait_for(
            lambda e: e["event_type"] == "notification.created" and e["payload"]["message"]["id"] == loud["id"]
        )
        assert notified(mine, quiet["id"]) == []
        # The author and someone who never took part heard nothing.
        assert theirs.of_type("notification.created") == []

    async with httpx.AsyncClient(base_url=server.url, headers=starter.auth, timeout=30) as client:
        levels = (await client.get("/v1/me/notifications")).json()
        assert levels == {"default": "mentions", "levels": {general: "muted"}}
        bad = await client.put(f"/v1/channels/{general}/notifications", json={"level": "loud"})
        assert bad.status_code == 400 and bad.json()["error"]["details"][0]["path"] == "level"
        back = await client.put(f"/v1/channels/{general}/notifications", json={"level": "mentions"})
        assert back.status_code == 200
        assert (await client.get("/v1/me/notifications")).json()["levels"] == {}


async def test_level_all_hears_every_message_and_a_private_channel_only_its_members(server: Server) -> None:
    watcher = invite(server, server.token, "member", name="Walt Watcher")
    general = server.channel_id("general")
    assert (await set_level(server, watcher, general, "all")).status_code == 200
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
        private = (await client.post("/v1/channels", json={"name": "board", "private": True})).json()["channel"]
        added = await client.post(f"/v1/channels/{private['id']}/members", json={"user_id": watcher.id})
        assert added.status_code in (200, 201, 204), added.text
    assert (await set_level(server, watcher, private["id"], "all")).status_code == 200
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
        removed = await client.delete(f"/v1/channels/{private['id']}/members/{watcher.id}")
        assert removed.status_code == 204
    async with Listener(server, watcher.auth) as listener:
        secret = await post(server, None, f"/v1/channels/{private['id']}/messages", "Board only")
        public = await post(server, None, f"/v1/channels/{general}/messages", "Lunch is here")
        got = await listener.wait_for(lambda e: e["event_type"] == "notification.created")
        assert got["payload"]["reason"] == "message" and got["payload"]["message"]["id"] == public["id"]
        assert notified(listener, secret["id"]) == []  # no longer a member: nothing from it


async def test_an_agents_reply_in_my_thread_notifies_me_when_it_completes(server: Server) -> None:
    asker = invite(server, server.token, "member", name="Ada Asker")
    spacebot = server.channel_id("spacebot")
    async with Listener(server, asker.auth) as listener:
        await post(server, asker, f"/v1/channels/{spacebot}/messages", "what time is it?")
        got = await listener.wait_for(lambda e: e["event_type"] == "notification.created")
        assert got["payload"]["reason"] == "reply"
        assert got["actor"]["kind"] == "agent" and "UTC" in got["payload"]["message"]["text"]
        completed = await listener.wait_for(
            lambda e: e["event_type"] == "message.completed" and e["payload"]["message"]["author"]["kind"] == "agent"
        )
        assert completed["payload"]["message"]["id"] == got["payload"]["message"]["id"]


async def test_levels_are_per_person_and_another_tenants_channel_is_not_found(server: Server) -> None:
    outsider = other_org_owner(server)
    answer = await set_level(server, outsider, server.channel_id("general"), "muted")
    assert answer.status_code == 404


async def test_a_mention_and_a_direct_message_notify_only_their_person(server: Server) -> None:
    general = server.channel_id("general")
    named = invite(server, server.token, "member", name="Mia Mentioned")
    partner = invite(server, server.token, "member", name="Dan Direct")
    bystander = invite(server, server.token, "member", name="Bea Bystander")
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
        dm = (await client.post("/v1/dms", json={"user_ids": [partner.id]})).json()["dm"]
    async with (
        Listener(server, named.auth) as theirs,
        Listener(server, partner.auth) as partners,
        Listener(server, bystander.auth) as others,
    ):
        mention = await post(
            server, None, f"/v1/channels/{general}/messages", f"@{named.user['handle']} can you look at this?"
        )
        got = await theirs.wait_for(lambda e: e["event_type"] == "notification.created")
        assert got["payload"]["reason"] == "mention" and got["payload"]["message"]["id"] == mention["id"]
        assert got["payload"]["channel_name"] == "general" and got["actor"]["id"] == server.owner["id"]

        direct = await post(server, None, f"/v1/channels/{dm['id']}/messages", "Just between us: lunch?")
        got = await partners.wait_for(lambda e: e["event_type"] == "notification.created")
        assert got["payload"]["reason"] == "dm" and got["payload"]["message"]["id"] == direct["id"]
        assert got["payload"]["message"]["text"] == "Just between us: lunch?"

        # A last message naming the bystander and Mia: notifications go out in order, one message
        # after another, so once it has arrived everything before it has too.
        names = f"@{bystander.user['handle']} @{named.user['handle']}"
        last = await post(server, None, f"/v1/channels/{general}/messages", f"thanks {names}")
        for listener in (others, theirs):
            await listener.wait_for(
                lambda e: e["event_type"] == "notification.created" and e["payload"]["message"]["id"] == last["id"]
            )
        assert [e["payload"]["message"]["id"] for e in others.of_type("notification.created")] == [last["id"]]
        assert [e["payload"]["message"]["id"] for e in theirs.of_type("notification.created")] == [
            mention["id"],
            last["id"],
        ]
        assert [e["payload"]["message"]["id"] for e in partners.of_type("notification.created")] == [direct["id"]]
