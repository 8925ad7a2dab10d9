"""Interactions on cards over HTTP: every refusal is clean, duplicates count once, polls tally
live, and nothing reaches the agent twice."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .support import Server, events_after, invite, wait_for_message


def post_card(
    client: httpx.Client, channel_id: str, blocks: list[dict[str, Any]], text: str = "card"
) -> dict[str, Any]:
    response = client.post(f"/v1/channels/{channel_id}/messages", json={"text": text, "blocks": blocks})
    assert response.status_code == 201, response.text
    return dict(response.json()["message"])


def interact(
    client: httpx.Client,
    message_id: str,
    action_id: str,
    *,
    block_id: str | None = None,
    values: Any = None,
    key: str | None = None,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/v1/interactions",
        json={"message_id": message_id, "action_id": action_id, "block_id": block_id, "values": values},
        headers=headers,
    )


def test_cards_are_validated_when_posted(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    with httpx.Client(base_url=shared_server.url, headers=shared_server.auth) as client:
        bad = client.post(
            f"/v1/channels/{general}/messages",
            json={
                "text": "x",
                "blocks": [
                    {"type": "section", "text": "ok"},
                    {"type": "actions", "block_id": "a", "elements": [{"type": "button", "label": "no action id"}]},
                ],
            },
        )
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["code"] == "invalid_card"
        assert error["details"][0]["path"].startswith("blocks[1].elements[0]")
        script = client.post(
            f"/v1/channels/{general}/messages",
            json={"text": "x", "blocks": [{"type": "image", "url": "javascript:alert(1)", "alt_text": "x"}]},
        )
        assert script.status_code == 400 and script.json()["error"]["details"][0]["path"].startswith("blocks[0].url")


def test_interactions_are_checked_against_their_card(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    member = invite(shared_server, shared_server.token, "member")
    with (
        httpx.Client(base_url=shared_server.url, headers=shared_server.auth) as owner,
        httpx.Client(base_url=shared_server.url, headers=member.auth) as mem,
    ):
        card = post_card(
            owner,
            general,
            [
                {
                    "type": "actions",
                    "block_id": "ops",
                    "elements": [
                        {"type": "button", "action_id": "restart", "label": "Restart", "scope": "ops:restart"},
                        {
                            "type": "select",
                            "action_id": "env",
                            "options": [{"label": "Staging", "value": "staging"}, {"label": "Prod", "value": "prod"}],
                        },
                    ],
                },
                {
                    "type": "form",
                    "block_id": "f",
                    "action_id": "file",
                    "fields": [
                        {"type": "text", "name": "title", "label": "Title", "required": True, "max": 20},
                        {"type": "number", "name": "count", "label": "Count", "min": 1, "max": 5},
                    ],
                },
            ],
        )
        before = len(events_after(shared_server, card["seq"]))
        unknown = interact(mem, card["id"], "launch")
        assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_action"
        outside = interact(mem, card["id"], "env", values=["qa"])
        assert outside.status_code == 400 and outside.json()["error"]["details"][0]["path"].startswith("values")
        scoped = interact(mem, card["id"], "restart")
        assert scoped.status_code == 403 and scoped.json()["error"]["details"]["scope"] == "ops:restart"
        form_bad = interact(mem, card["id"], "file", values={"title": "", "count": 9})
        assert form_bad.status_code == 400
        paths = {d["path"] for d in form_bad.json()["error"]["details"]}
        assert paths & {"values.title", "values.count"}
        assert len(events_after(shared_server, card["seq"])) == before, "a refused interaction changes nothing"

        chosen = interact(mem, card["id"], "env", values=["prod"], key="choose-1")
        assert chosen.status_code == 201
        interaction = chosen.json()["interaction"]
        assert interaction["values"] == ["prod"] and interaction["user"]["id"] == member.id
        replayed = interact(mem, card["id"], "env", values=["prod"], key="choose-1")
        assert replayed.json()["interaction"]["id"] == interaction["id"]
        assert replayed.headers.get("idempotent-replayed") == "true"
        ok_form = interact(mem, card["id"], "file", values={"title": "Disk full", "count": 2})
        assert ok_form.status_code == 201 and ok_form.json()["interaction"]["values"]["count"] == 2
        assert interact(owner, card["id"], "restart").status_code == 201  # the owner holds ops:restart
        submitted = [e for e in events_after(shared_server, card["seq"]) if e["event_type"] == "interaction.submitted"]
        assert len(submitted) == 3
        gone = interact(mem, "msg_nope", "env", values=["prod"])
        assert gone.status_code == 404


def test_polls_tally_live_one_vote_each(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    voters = [invite(shared_server, shared_server.token, "member") for _ in range(2)]
    guest = invite(shared_server, shared_server.token, "guest")
    with httpx.Client(base_url=shared_server.url, headers=shared_server.auth) as owner:
        poll = post_card(
            owner,
            general,
            [
                {
                    "type": "poll",
                    "block_id": "lunch",
                    "question": "Lunch?",
                    "options": [{"label": "Pizza", "value": "pizza"}, {"label": "Salad", "value": "salad"}],
                }
            ],
        )
        assert poll["card_state"]["polls"]["lunch"]["tallies"] == {"pizza": 0, "salad": 0}
        closed = post_card(
            owner,
            general,
            [
                {
                    "type": "poll",
                    "block_id": "old",
                    "question": "Old?",
                    "closes_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                    "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}],
                }
            ],
        )
    clients = [httpx.Client(base_url=shared_server.url, headers=v.auth) for v in voters]
    try:
        first = interact(clients[0], poll["id"], "vote", block_id="lunch", values=["pizza"])
        assert first.status_code == 201
        assert first.json()["message"]["card_state"]["polls"]["lunch"]["tallies"] == {"pizza": 1, "salad": 0}
        again = interact(clients[0], poll["id"], "vote", block_id="lunch", values=["pizza"])
        assert again.status_code == 200 and again.json()["changed"] is False and again.json()["interaction"] is None
        changed = interact(clients[0], poll["id"], "vote", block_id="lunch", values=["salad"])
        assert changed.json()["message"]["card_state"]["polls"]["lunch"]["tallies"] == {"pizza": 0, "salad": 1}
        second = interact(clients[1], poll["id"], "vote", block_id="lunch", values=["salad"]).json()
        tallies = second["message"]["card_state"]["polls"]["lunch"]
        assert tallies["tallies"] == {"pizza": 0, "salad": 2}
        assert sorted(tallies["voters"]["salad"]) == sorted(v.user["name"] for v in voters)
        two = interact(clients[1], poll["id"], "vote", block_id="lunch", values=["pizza", "salad"])
        assert two.status_code == 400, "a single-choice poll takes one option"
        late = interact(clients[1], closed["id"], "vote", block_id="old", values=["a"])
        assert late.status_code == 409 and late.json()["error"]["code"] == "poll_closed"
        with httpx.Client(base_url=shared_server.url, headers=guest.auth) as outsider:
            hidden = interact(outsider, poll["id"], "vote", block_id="lunch", values=["pizza"])
            assert hidden.status_code == 404, "a guest not in the channel cannot see the poll"
        updates = [
            e
            for e in events_after(shared_server, poll["seq"])
            if e["event_type"] == "message.updated" and e["payload"]["message"]["id"] == poll["id"]
        ]
        assert len(updates) == 3, "each change of a vote updates the card live; a repeated vote does not"
    finally:
        for client in clients:
            client.close()


def test_agent_cards_reach_the_agent_once(server: Server) -> None:
    spacebot = server.channel_id("spacebot")
    with httpx.Client(base_url=server.url, headers=server.auth) as client:
        asked = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "show me an approval card"}).json()
        thread_id = asked["thread"]["id"]
        card = wait_for_message(
            server, thread_id, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed" and m["blocks"]
        )
        first = interact(client, card["id"], "approve", key="click-1")
        assert first.status_code == 201
        assert interact(client, card["id"], "approve", key="click-1").headers.get("idempotent-replayed") == "true"
        reply = wait_for_message(
            server,
            thread_id,
            lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed" and m["id"] != card["id"],
        )
        assert reply["metadata"]["in_reply_to"] == [card["id"]], "the click came to the agent as a turn"
        time.sleep(1.0)  # time enough for a second, wrong, turn to start
        history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
        agent_turns = [m for m in history if m["author"]["kind"] == "agent"]
        assert len(agent_turns) == 2, "the replayed click reached the agent once"
