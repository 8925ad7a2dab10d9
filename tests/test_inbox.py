"""Mentions, the inbox, per-thread unread and the thread list's last reply (issue 13); direct
conversations: membership, privacy, and an agent answering in one."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from .support import Person, Server, events_after, invite, other_org_owner, wait_for_message, wait_until


def as_(server: Server, person: Person) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=person.auth, timeout=30)


@pytest.fixture
def channel(shared_server: Server) -> dict[str, Any]:
    with shared_server.sync_client() as client:
        return dict(client.post("/v1/channels", json={"name": "i-" + secrets.token_hex(4)}).json()["channel"])


def test_the_inbox_holds_threads_i_started_replied_to_or_was_mentioned_in(
    shared_server: Server, channel: dict[str, Any]
) -> None:
    ann, bob = (invite(shared_server, shared_server.token, "member", name=n) for n in ("Ann Example", "Bob Example"))
    assert ann.user["handle"] == "ann-example"
    with as_(shared_server, ann) as a, as_(shared_server, bob) as b:
        started = a.post(f"/v1/channels/{channel['id']}/messages", json={"text": "Ann's thread"}).json()
        elsewhere = b.post(f"/v1/channels/{channel['id']}/messages", json={"text": "Bob's thread"}).json()
        mention = b.post(f"/v1/channels/{channel['id']}/messages", json={"text": "hey @ann-example look"}).json()
        b.post(f"/v1/channels/{channel['id']}/messages", json={"text": "not for ann"})
        a.post(f"/v1/threads/{elsewhere['thread']['id']}/messages", json={"text": "Ann replies"})
        b.post(f"/v1/threads/{started['thread']['id']}/messages", json={"text": "Bob replies to Ann"})
        inbox = a.get("/v1/inbox").json()
    by_id = {t["id"]: t for t in inbox["threads"]}
    assert set(by_id) == {started["thread"]["id"], elsewhere["thread"]["id"], mention["thread"]["id"]}
    assert by_id[started["thread"]["id"]]["reasons"] == ["started"]
    assert by_id[elsewhere["thread"]["id"]]["reasons"] == ["replied"]
    assert by_id[mention["thread"]["id"]]["reasons"] == ["mentioned"]
    # Most recently active first; unread counts only what others wrote.
    assert inbox["threads"][0]["id"] == started["thread"]["id"]
    assert by_id[started["thread"]["id"]]["unread_count"] == 1
    assert by_id[elsewhere["thread"]["id"]]["unread_count"] == 1  # Bob's root; Ann's reply is hers
    assert inbox["unread_threads"] == 3
    last = by_id[started["thread"]["id"]]["last_reply"]
    assert last["preview"] == "Bob replies to Ann" and last["author"]["id"] == bob.id
    assert by_id[started["thread"]["id"]]["channel"]["name"] == channel["name"]


def test_mark_read_moves_forward_only_and_reaches_my_other_sessions(
    shared_server: Server, channel: dict[str, Any]
) -> None:
    reader = invite(shared_server, shared_server.token, "member")
    with shared_server.sync_client() as owner:
        posted = owner.post(f"/v1/channels/{channel['id']}/messages", json={"text": f"hi @{reader.user['handle']}"})
        thread = posted.json()["thread"]
        for i in range(3):
            owner.post(f"/v1/threads/{thread['id']}/messages", json={"text": f"more {i}"})
        start = owner.get("/v1/me").json()["seq"]
        newest = owner.get(f"/v1/threads/{thread['id']}").json()["thread"]["last_seq"]
    with as_(shared_server, reader) as client:
        item = client.get("/v1/inbox").json()["threads"][0]
        assert item["id"] == thread["id"] and item["unread_count"] == 4
        listed = client.get(f"/v1/channels/{channel['id']}/threads").json()["threads"][0]
        assert listed["unread_count"] == 4 and listed["repliers"][0]["kind"] == "user"
        assert client.post(f"/v1/threads/{thread['id']}/read", json={"seq": newest}).json()["last_read_seq"] == newest
        assert client.post(f"/v1/threads/{thread['id']}/read", json={"seq": 1}).json()["last_read_seq"] == newest
        assert client.get("/v1/inbox").json()["unread_threads"] == 0
        assert client.get("/v1/inbox", params={"unread": "true"}).json()["threads"] == []
        assert client.get(f"/v1/channels/{channel['id']}/threads").json()["threads"][0]["unread_count"] == 0
    # The marker is told to the reader's own streams, and to nobody else's.
    mine = [e for e in events_after(shared_server, start, reader.auth) if e["event_type"] == "thread.read"]
    assert [(e["payload"]["thread_id"], e["payload"]["last_read_seq"]) for e in mine] == [(thread["id"], newest)]
    assert mine[0]["channel_id"] == "@" + reader.id
    assert not [e for e in events_after(shared_server, start) if e["event_type"] == "thread.read"]


def test_mark_all_read_and_paging(shared_server: Server, channel: dict[str, Any]) -> None:
    reader = invite(shared_server, shared_server.token, "member")
    with shared_server.sync_client() as owner:
        for i in range(5):
            owner.post(f"/v1/channels/{channel['id']}/messages", json={"text": f"@{reader.user['handle']} n{i}"})
    with as_(shared_server, reader) as client:
        first = client.get("/v1/inbox", params={"limit": 3}).json()
        assert len(first["threads"]) == 3 and first["next_before"]
        rest = client.get("/v1/inbox", params={"limit": 3, "before": first["next_before"]}).json()
        assert len(rest["threads"]) == 2 and rest["next_before"] is None
        assert client.post("/v1/inbox/read").json() == {"marked": 5}
        assert client.get("/v1/inbox").json()["unread_threads"] == 0


def test_a_private_channel_leaves_the_inbox_with_its_member(shared_server: Server) -> None:
    reader = invite(shared_server, shared_server.token, "member")
    with shared_server.sync_client() as owner:
        private = owner.post("/v1/channels", json={"name": "x-" + secrets.token_hex(4), "private": True}).json()
        channel_id = private["channel"]["id"]
        owner.post(f"/v1/channels/{channel_id}/members", json={"user_id": reader.id})
        owner.post(f"/v1/channels/{channel_id}/messages", json={"text": f"secret for @{reader.user['handle']}"})
        with as_(shared_server, reader) as client:
            assert len(client.get("/v1/inbox").json()["threads"]) == 1
            owner.delete(f"/v1/channels/{channel_id}/members/{reader.id}")
            assert client.get("/v1/inbox").json()["threads"] == []


def test_an_agent_reply_completes_the_thread_preview(shared_server: Server) -> None:
    spacebot = shared_server.channel_id("spacebot")
    with shared_server.sync_client() as client:
        posted = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "what time is it?"}).json()
    reply = wait_for_message(
        shared_server, posted["thread"]["id"], lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed"
    )
    with shared_server.sync_client() as client:
        thread = client.get(f"/v1/threads/{posted['thread']['id']}").json()["thread"]
    assert thread["last_reply"]["message_id"] == reply["id"]
    assert thread["last_reply"]["preview"] and thread["last_reply"]["preview"] in " ".join(reply["text"].split())
    assert thread["repliers"] == [{"kind": "agent", "id": "spacebot"}]


# --- direct conversations -------------------------------------------------------------------------


def test_a_direct_conversation_is_found_again_and_private(shared_server: Server) -> None:
    ann, bob, eve = (invite(shared_server, shared_server.token, "member") for _ in range(3))
    with as_(shared_server, ann) as a:
        made = a.post("/v1/dms", json={"user_ids": [bob.id]})
        assert made.status_code == 201
        dm = made.json()["dm"]
        assert dm["kind"] == "dm" and dm["private"] and {m["id"] for m in dm["members"]} == {ann.id, bob.id}
        posted = a.post(f"/v1/channels/{dm['id']}/messages", json={"text": "just us"}).json()
        assert dm["id"] not in {c["id"] for c in a.get("/v1/channels").json()["channels"]}
    with as_(shared_server, bob) as b:
        again = b.post("/v1/dms", json={"user_ids": [ann.id]})
        assert again.status_code == 200 and again.json()["dm"]["id"] == dm["id"]
        listed = b.get("/v1/dms").json()["dms"]
        assert [d["id"] for d in listed] == [dm["id"]] and listed[0]["unread_count"] == 1
        assert b.get("/v1/inbox").json()["threads"][0]["reasons"] == ["direct"]
    # Outsiders, the owner included, do not see that it exists.
    for outsider in (eve, Person(shared_server.owner, shared_server.token)):
        with as_(shared_server, outsider) as o:
            assert o.get(f"/v1/channels/{dm['id']}").status_code == 404
            assert o.get(f"/v1/threads/{posted['thread']['id']}/history").status_code == 404
            assert o.post(f"/v1/channels/{dm['id']}/messages", json={"text": "hi"}).status_code == 404
            assert o.get("/v1/search", params={"q": "just us"}).json()["results"] == []
            assert o.get("/v1/dms").json()["dms"] == []
    # Its members are fixed: nobody is added, and nobody leaves.
    with as_(shared_server, ann) as a:
        ann_is_not_admin = a.post(f"/v1/channels/{dm['id']}/members", json={"user_id": eve.id})
        assert ann_is_not_admin.status_code == 403
        leave = a.delete(f"/v1/channels/{dm['id']}/members/{ann.id}")
        assert leave.status_code == 409 and leave.json()["error"]["code"] == "direct_conversation"


def test_a_group_conversation_is_seen_by_all_its_members_and_nobody_else(shared_server: Server) -> None:
    ann, bob, cat, eve = (invite(shared_server, shared_server.token, "member") for _ in range(4))
    with as_(shared_server, ann) as a:
        pair = a.post("/v1/dms", json={"user_ids": [bob.id]}).json()["dm"]
        made = a.post("/v1/dms", json={"user_ids": [bob.id, cat.id]})
        assert made.status_code == 201
        group = made.json()["dm"]
        # Ann, Bob and Cat together are a new conversation, not Ann and Bob's.
        assert group["id"] != pair["id"] and {m["id"] for m in group["members"]} == {ann.id, bob.id, cat.id}
        posted = a.post(f"/v1/channels/{group['id']}/messages", json={"text": "the three of us"}).json()
    # Cat comes after Bob, so Bob's answer is unread for Cat too.
    for member, others, unread in ((bob, [cat.id, ann.id], 1), (cat, [bob.id, ann.id], 2)):
        with as_(shared_server, member) as client:
            # Asked for in any order, by any member, it is the same conversation.
            again = client.post("/v1/dms", json={"user_ids": others})
            assert again.status_code == 200 and again.json()["dm"]["id"] == group["id"]
            listed = {d["id"]: d for d in client.get("/v1/dms").json()["dms"]}
            assert listed[group["id"]]["unread_count"] == unread
            assert {m["id"] for m in listed[group["id"]]["members"]} == {ann.id, bob.id, cat.id}
            history = client.get(f"/v1/threads/{posted['thread']['id']}/history").json()["messages"]
            assert [m["text"] for m in history] == ["the three of us", "hello"][:unread]
            assert posted["thread"]["id"] in {t["id"] for t in client.get("/v1/inbox").json()["threads"]}
            answer = client.post(f"/v1/threads/{posted['thread']['id']}/messages", json={"text": "hello"})
            assert answer.status_code == 201
    # Cat is not in Ann and Bob's conversation; Eve is in neither.
    with as_(shared_server, cat) as c:
        assert pair["id"] not in {d["id"] for d in c.get("/v1/dms").json()["dms"]}
        assert c.get(f"/v1/channels/{pair['id']}").status_code == 404
    with as_(shared_server, eve) as e:
        assert e.get("/v1/dms").json()["dms"] == []
        assert e.get(f"/v1/channels/{group['id']}").status_code == 404
        assert e.get(f"/v1/threads/{posted['thread']['id']}/history").status_code == 404
        assert e.post(f"/v1/threads/{posted['thread']['id']}/messages", json={"text": "me too"}).status_code == 404
        assert e.get("/v1/search", params={"q": "three"}).json()["results"] == []


def test_a_member_of_another_organisation_is_refused(shared_server: Server) -> None:
    ann = invite(shared_server, shared_server.token, "member")
    outsider = other_org_owner(shared_server)
    with as_(shared_server, ann) as a:
        # The same answer as for an id nobody has: another tenant's people are not there.
        refused = a.post("/v1/dms", json={"user_ids": [outsider.id]})
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_user"
        # In a group too: the whole conversation is refused, naming the person who is not there.
        group = a.post("/v1/dms", json={"user_ids": [shared_server.owner["id"], outsider.id]})
        assert group.status_code == 404 and group.json()["error"]["code"] == "unknown_user"
        assert a.get("/v1/dms").json()["dms"] == []
    with as_(shared_server, outsider) as o:
        back = o.post("/v1/dms", json={"user_ids": [ann.id]})
        assert back.status_code == 404 and back.json()["error"]["code"] == "unknown_user"
        assert o.get("/v1/dms").json()["dms"] == []


def test_bad_direct_conversations_are_refused(shared_server: Server) -> None:
    with shared_server.sync_client() as client:
        too_many = client.post("/v1/dms", json={"user_ids": [f"usr_{i}" for i in range(9)]})
        assert too_many.status_code == 400
        unknown = client.post("/v1/dms", json={"user_ids": ["usr_nobody"]})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_user"
        assert client.post("/v1/dms", json={"user_ids": "x"}).status_code == 400


@pytest.mark.slow
def test_an_agent_in_a_direct_conversation_answers(shared_server: Server) -> None:
    person = invite(shared_server, shared_server.token, "member")
    with as_(shared_server, person) as client:
        dm = client.post("/v1/dms", json={"user_ids": ["spacebot"]}).json()["dm"]
        posted = client.post(f"/v1/channels/{dm['id']}/messages", json={"text": "what time is it?"}).json()

    def answered() -> Any:
        with as_(shared_server, person) as client:
            history = client.get(f"/v1/threads/{posted['thread']['id']}/history").json()["messages"]
        return next((m for m in history if m["author"]["kind"] == "agent" and m["state"] == "completed"), None)

    reply = wait_until(answered, timeout=15)
    assert reply["author"]["id"] == "spacebot" and reply["channel_id"] == dm["id"]
    # Still private: the owner does not see the reply either.
    with shared_server.sync_client() as owner:
        assert owner.get(f"/v1/messages/{reply['id']}").status_code == 404


def test_handles_come_from_names_and_agents_ids(shared_server: Server) -> None:
    from .support import bot

    first = invite(shared_server, shared_server.token, "member", name="Émile Zola")
    second = invite(shared_server, shared_server.token, "member", name="Émile Zola")
    robot = bot(shared_server, shared_server.token, name="Build Robot")
    assert first.user["handle"].startswith("emile-zola")  # another test's Émile may have it first
    assert second.user["handle"] != first.user["handle"] and second.user["handle"].startswith("emile-zola-")
    assert robot.user["handle"].startswith("build-robot")
    with shared_server.sync_client() as client:
        users = {u["id"]: u for u in client.get("/v1/users").json()["users"]}
    assert users["spacebot"]["handle"] == "spacebot"
