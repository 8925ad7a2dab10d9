"""The first hour without friction (issue 13), the server's side: an agent's card settles for
everyone after the first act, the offline agent answers acts like an agent, and what it says
after a question comes below the question."""

from __future__ import annotations

from typing import Any

import httpx

from .support import Server, wait_for_message


async def start(server: Server, text: str) -> dict[str, Any]:
    async with server.client() as client:
        response = await client.post(f"/v1/channels/{server.channel_id('spacebot')}/messages", json={"text": text})
        assert response.status_code == 201, response.text
        return dict(response.json())


def history(server: Server, thread_id: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        return list(client.get(f"/v1/threads/{thread_id}/history", params={"limit": 200}).json()["messages"])


def has_card(message: dict[str, Any]) -> bool:
    return bool(message["blocks"]) and message["author"]["kind"] == "agent" and message["state"] == "completed"


async def test_an_agents_card_settles_at_the_first_act_and_the_agent_answers_in_words(server: Server) -> None:
    started = await start(server, "post an approval card please")
    thread_id = started["thread"]["id"]
    card = wait_for_message(server, thread_id, has_card)
    async with server.client() as client:
        acted = await client.post(
            "/v1/interactions", json={"message_id": card["id"], "block_id": "decision", "action_id": "approve"}
        )
        assert acted.status_code == 201, acted.text
        decided = acted.json()["message"]["card_state"]["decided"]["decision"]
        assert decided["label"] == "Approved" and decided["by"] == server.owner["id"] and decided["at"]
        again = await client.post(
            "/v1/interactions", json={"message_id": card["id"], "block_id": "decision", "action_id": "reject"}
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    answer = wait_for_message(
        server, thread_id, lambda m: m["author"]["kind"] == "agent" and "Deploying to staging" in m["text"]
    )
    assert answer["text"].startswith("Approved.") and answer["seq"] > card["seq"]
    said = " ".join(m["text"] for m in history(server, thread_id) if m["author"]["kind"] == "agent")
    assert "[interaction]" not in said and "action_id" not in said


async def test_the_answer_to_an_agents_question_comes_below_it_and_the_question_settles(server: Server) -> None:
    started = await start(server, "please ask me which environment")
    thread_id = started["thread"]["id"]
    question = wait_for_message(server, thread_id, lambda m: bool(m["metadata"].get("worker_question")))
    async with server.client() as client:
        acted = await client.post(
            "/v1/interactions",
            json={"message_id": question["id"], "block_id": "answer", "action_id": "answer", "values": ["staging"]},
        )
        assert acted.status_code == 201, acted.text
        assert acted.json()["message"]["card_state"]["decided"]["answer"]["label"] == "“staging” chosen"
    answer = wait_for_message(
        server,
        thread_id,
        lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed" and "staging" in m["text"],
    )
    assert answer["seq"] > question["seq"], "the answer is below the question"
    placeholder = next(m for m in history(server, thread_id) if m["metadata"].get("continued_in") == answer["id"])
    assert placeholder["text"] == "" and placeholder["state"] == "completed"
    assert placeholder["seq"] < question["seq"] and answer["metadata"]["continues"] == placeholder["id"]


async def test_a_forms_answers_are_its_posters_as_json_and_csv(server: Server) -> None:
    from .support import invite

    poster = invite(server, server.token, "member", name="Paula Poster")
    answerer = invite(server, server.token, "member", name="Andy Answerer")
    blocks = [
        {
            "type": "form",
            "block_id": "form",
            "action_id": "submit",
            "fields": [
                {"type": "text", "name": "q1", "label": "Name", "required": True},
                {"type": "checkbox", "name": "q2", "label": "Coming?"},
                {
                    "type": "select",
                    "name": "q3",
                    "label": "Diet",
                    "options": [{"label": "Vegan", "value": "o1"}, {"label": "+1 guest", "value": "o2"}],
                },
            ],
        }
    ]
    general = server.channel_id("general")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        posted = client.post(
            f"/v1/channels/{general}/messages", json={"text": "RSVP", "blocks": blocks}, headers=poster.auth
        ).json()
        message_id = posted["message"]["id"]
        for values in ({"q1": "Andy", "q2": True, "q3": "o2"}, {"q1": "Andy again", "q2": False}):
            acted = client.post(
                "/v1/interactions",
                json={"message_id": message_id, "block_id": "form", "action_id": "submit", "values": values},
                headers=answerer.auth,
            )
            assert acted.status_code == 201, acted.text
        assert acted.json()["message"]["card_state"]["forms"]["form"] == {"responses": 2}
        refused = client.get(f"/v1/messages/{message_id}/responses", headers=answerer.auth)
        assert refused.status_code == 403 and refused.json()["error"]["details"]["scope"] == "channels:manage"
        mine = client.get(f"/v1/messages/{message_id}/responses", headers=poster.auth).json()
        form = mine["forms"][0]
        assert [r["values"]["q1"] for r in form["responses"]] == ["Andy", "Andy again"]
        assert form["responses"][0]["user"]["name"] == "Andy Answerer"
        as_admin = client.get(f"/v1/messages/{message_id}/responses", headers=server.auth)
        assert as_admin.status_code == 200, "an admin may see them too"
        sheet = client.get(f"/v1/messages/{message_id}/responses", params={"format": "csv"}, headers=poster.auth)
        assert sheet.headers["content-type"].startswith("text/csv")
        assert "attachment" in sheet.headers["content-disposition"]
        lines = sheet.content.decode("utf-8-sig").splitlines()
        assert lines[0] == "Submitted at,Name,Name,Coming?,Diet"
        assert lines[1].endswith(",Andy Answerer,Andy,yes,'+1 guest") and lines[2].endswith(",Andy again,no,")
