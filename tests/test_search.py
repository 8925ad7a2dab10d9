"""Search (issue 13): words, phrases, prefixes, negation, Zulip-style operators, snippets, sort and
paging, edits and deletes reflected at once, and clear errors. Over HTTP against a real server."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from spacechat_plugin.search.fusion import reciprocal_rank_fusion
from spacechat_plugin.search.query import parse
from spacechat_plugin.search.service import Hit, snippet_parts

from .support import PNG_BYTES, Person, Server, invite


def word() -> str:
    """A word no other test uses (letters only, so the tokenizer keeps it whole)."""
    return "zq" + "".join(secrets.choice("bcdfghjklmnpqrstvwxz") for _ in range(8))


def search(client: httpx.Client, q: str, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def texts(answer: dict[str, Any]) -> list[str]:
    return [r["message"]["text"] for r in answer["results"]]


@pytest.fixture
def channel(shared_server: Server) -> dict[str, Any]:
    with shared_server.sync_client() as client:
        created = client.post("/v1/channels", json={"name": "s-" + secrets.token_hex(4)})
        assert created.status_code == 201
        return dict(created.json()["channel"])


def post(client: httpx.Client, channel_id: str, text: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/channels/{channel_id}/messages", json={"text": text, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_words_phrases_prefix_and_negation(shared_server: Server, channel: dict[str, Any]) -> None:
    w = word()
    with shared_server.sync_client() as client:
        post(client, channel["id"], f"the {w} billing service deploys today")
        post(client, channel["id"], f"{w} deploying the search service")
        post(client, channel["id"], f"{w} billing was late")
        # Stemming: "deploy" finds "deploys" and "deploying".
        assert len(search(client, f"{w} deploy")["results"]) == 2
        # A phrase matches words in that order only.
        assert texts(search(client, f'{w} "billing service"')) == [f"the {w} billing service deploys today"]
        # Negation drops a word (and a phrase).
        assert sorted(texts(search(client, f"{w} -billing"))) == [f"{w} deploying the search service"]
        assert len(search(client, f'{w} -"search service"')["results"]) == 2
        # A prefix.
        assert len(search(client, w[:6] + "*")["results"]) == 3
        # FTS5 syntax in a query is just text: no error, no injection.
        assert search(client, f'{w} OR NEAR( "unbalanced')["results"] == []


def test_snippets_highlight_the_matching_words(shared_server: Server, channel: dict[str, Any]) -> None:
    w = word()
    with shared_server.sync_client() as client:
        post(client, channel["id"], f"Lorem ipsum dolor sit amet <b>{w}</b> consectetur")
        (hit,) = search(client, w)["results"]
    highlighted = [part["text"] for part in hit["snippet"] if part["highlight"]]
    assert highlighted == [w]
    assert "".join(part["text"] for part in hit["snippet"]) == f"Lorem ipsum dolor sit amet <b>{w}</b> consectetur"
    assert hit["thread"]["id"] == hit["message"]["thread_id"]
    assert hit["channel"] == {"id": channel["id"], "name": channel["name"], "kind": "channel", "private": False}


def test_operators(shared_server: Server, channel: dict[str, Any]) -> None:
    w = word()
    other = invite(shared_server, shared_server.token, "member")
    with shared_server.sync_client() as client:
        client.post(f"/v1/channels/{channel['id']}/join", headers=other.auth)
        mine = post(client, channel["id"], f"{w} from the owner")
        theirs = client.post(
            f"/v1/channels/{channel['id']}/messages", json={"text": f"{w} from a member"}, headers=other.auth
        ).json()
        upload = client.post(
            "/v1/uploads", params={"filename": "p.png"}, content=PNG_BYTES, headers={"Content-Type": "image/png"}
        ).json()["attachment"]
        post(client, channel["id"], f"{w} with a picture", attachments=[upload["id"]])
        post(client, channel["id"], f"{w} with a card", blocks=[{"type": "section", "text": "hi"}])
        post(client, channel["id"], f"{w} see https://example.com/x")
        handle = other.user["handle"]
        assert texts(search(client, f"{w} from:@{handle}")) == [f"{w} from a member"]
        assert f"{w} from a member" not in texts(search(client, f"{w} -from:@{handle}"))
        assert texts(search(client, f"{w} from:me", sort="newest"))[-1] == f"{w} from the owner"
        assert texts(search(client, f"{w} has:attachment")) == [f"{w} with a picture"]
        assert texts(search(client, f"{w} has:image")) == [f"{w} with a picture"]
        assert texts(search(client, f"{w} has:card")) == [f"{w} with a card"]
        assert texts(search(client, f"{w} has:link")) == [f"{w} see https://example.com/x"]
        assert len(search(client, f"{w} -has:card")["results"]) == 4
        assert len(search(client, f"in:#{channel['name']} {w}")["results"]) == 5
        assert search(client, f"-in:#{channel['name']} {w}")["results"] == []
        # Operators alone: newest first.
        only = search(client, f"in:#{channel['name']} from:@{handle}")
        assert [r["message"]["id"] for r in only["results"]] == [theirs["message"]["id"]]
        # Dates: before and after (UTC days and RFC 3339 times).
        created = mine["message"]["created_at"]
        assert len(search(client, f"{w} after:{created[:10]}")["results"]) == 5
        assert search(client, f"{w} before:{created[:10]}")["results"] == []
        assert search(client, f"{w} after:2999-01-01")["results"] == []
        assert len(search(client, f"{w} before:2999-01-01T00:00:00Z")["results"]) == 5


def test_has_reaction_finds_only_reacted_messages(shared_server: Server, channel: dict[str, Any]) -> None:
    w = word()
    with shared_server.sync_client() as client:
        reacted = post(client, channel["id"], f"{w} with a reaction")["message"]["id"]
        taken_back = post(client, channel["id"], f"{w} reacted then taken back")["message"]["id"]
        post(client, channel["id"], f"{w} never reacted")
        assert search(client, f"{w} has:reaction")["results"] == []
        for message_id in (reacted, taken_back):
            assert client.post(f"/v1/messages/{message_id}/reactions", json={"emoji": "🎉"}).status_code == 201
        assert client.delete(f"/v1/messages/{taken_back}/reactions", params={"emoji": "🎉"}).status_code == 204
        assert texts(search(client, f"{w} has:reaction")) == [f"{w} with a reaction"]
        assert sorted(texts(search(client, f"{w} -has:reaction"))) == [
            f"{w} never reacted",
            f"{w} reacted then taken back",
        ]


def test_is_mentioned_and_is_unread(shared_server: Server, channel: dict[str, Any]) -> None:
    w = word()
    reader = invite(shared_server, shared_server.token, "member")
    with shared_server.sync_client() as client:
        posted = post(client, channel["id"], f"{w} hello @{reader.user['handle']}")
        post(client, channel["id"], f"{w} nobody named")
    with httpx.Client(base_url=shared_server.url, headers=reader.auth) as client:
        assert texts(search(client, f"{w} is:mentioned")) == [f"{w} hello @{reader.user['handle']}"]
        assert len(search(client, f"{w} is:unread")["results"]) == 2
        read = client.post(f"/v1/threads/{posted['thread']['id']}/read", json={"seq": posted["message"]["seq"]})
        assert read.status_code == 200
        assert texts(search(client, f"{w} is:unread")) == [f"{w} nobody named"]
        assert texts(search(client, f"{w} -is:unread")) == [f"{w} hello @{reader.user['handle']}"]


def test_edits_and_deletes_are_reflected_at_once(shared_server: Server, channel: dict[str, Any]) -> None:
    before, after = word(), word()
    with shared_server.sync_client() as client:
        posted = post(client, channel["id"], f"first {before}")
        message_id = posted["message"]["id"]
        assert len(search(client, before)["results"]) == 1
        edited = client.patch(f"/v1/messages/{message_id}", json={"text": f"second {after}"})
        assert edited.status_code == 200
        assert search(client, before)["results"] == []
        assert texts(search(client, after)) == [f"second {after}"]
        assert client.delete(f"/v1/messages/{message_id}").status_code == 200
        assert search(client, after)["results"] == []


def test_relevance_newest_and_paging(shared_server: Server, channel: dict[str, Any]) -> None:
    w = word()
    with shared_server.sync_client() as client:
        for i in range(5):
            post(client, channel["id"], f"{w} number {i}")
        post(client, channel["id"], f"{w} {w} {w} many times")
        assert texts(search(client, w))[0] == f"{w} {w} {w} many times"
        newest = search(client, w, sort="newest")
        assert texts(newest)[0] == f"{w} {w} {w} many times"
        assert [r["message"]["seq"] for r in newest["results"]] == sorted(
            (r["message"]["seq"] for r in newest["results"]), reverse=True
        )
        first = search(client, w, limit=4, sort="newest")
        assert len(first["results"]) == 4 and first["next"] == "4"
        rest = search(client, w, limit=4, sort="newest", cursor=first["next"])
        assert len(rest["results"]) == 2 and rest["next"] is None
        seen = {r["message"]["id"] for r in first["results"] + rest["results"]}
        assert len(seen) == 6


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"q": ""}, "invalid_query"),
        ({"q": "has:spaceship"}, "invalid_query"),
        ({"q": "is:starred"}, "invalid_query"),
        ({"q": "x before:yesterday"}, "invalid_query"),
        ({"q": "x in:#no-such-channel"}, "invalid_query"),
        ({"q": "x from:@nobody-at-all"}, "invalid_query"),
        ({"q": "x" * 501}, "invalid_query"),
        ({"q": "x", "mode": "psychic"}, "unsupported_mode"),
        ({"q": "x", "sort": "random"}, "bad_request"),
        ({"q": "x", "limit": "0"}, "bad_request"),
        ({"q": "x", "cursor": "abc"}, "bad_request"),
    ],
)
def test_bad_searches_get_a_clear_400(shared_server: Server, params: dict[str, str], code: str) -> None:
    with shared_server.sync_client() as client:
        response = client.get("/v1/search", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


def test_a_private_channel_is_unknown_to_in_for_non_members(shared_server: Server) -> None:
    w = word()
    outsider: Person = invite(shared_server, shared_server.token, "member")
    with shared_server.sync_client() as client:
        secret = client.post("/v1/channels", json={"name": "p-" + secrets.token_hex(4), "private": True}).json()
        post(client, secret["channel"]["id"], f"{w} secret")
        assert len(search(client, f"{w} in:#{secret['channel']['name']}")["results"]) == 1
    with httpx.Client(base_url=shared_server.url, headers=outsider.auth) as client:
        refused = client.get("/v1/search", params={"q": f"{w} in:#{secret['channel']['name']}"})
        unknown = client.get("/v1/search", params={"q": f"{w} in:#never-made-{w}"})
    # The same answer as for a channel that does not exist: nothing to learn from it.
    assert refused.status_code == unknown.status_code == 400
    assert refused.json()["error"]["message"].replace(secret["channel"]["name"], "X") == unknown.json()["error"][
        "message"
    ].replace(f"never-made-{w}", "X")


# --- the parts, without a server ---------------------------------------------------------------


def test_the_parser_reads_operators_phrases_and_negation() -> None:
    query = parse('deploy* -"staging box" from:@ann -in:#ops has:card is:unread after:2026-01-01 10:30')
    assert [(t.text, t.negated, t.phrase, t.prefix) for t in query.terms] == [
        ("deploy", False, False, True),
        ("staging box", True, True, False),
        ("10:30", False, False, False),
    ]
    assert [(o.name, o.value, o.negated) for o in query.operators] == [
        ("from", "@ann", False),
        ("in", "#ops", True),
        ("has", "card", False),
        ("is", "unread", False),
        ("after", "2026-01-01", False),
    ]
    assert query.match() == '("deploy"* AND "10:30") NOT "staging box"'
    assert parse("-alpha -beta").match() is None
    assert parse("-alpha -beta").exclude() == '"alpha" OR "beta"'
    assert parse('say "hi""').terms[1].fts() == '"hi"'


def test_snippet_parts_and_fusion() -> None:
    assert snippet_parts("a \ue000b\ue001 c") == [
        {"text": "a ", "highlight": False},
        {"text": "b", "highlight": True},
        {"text": " c", "highlight": False},
    ]
    full = [Hit("m1", 3.0, {"id": "m1"}, [{"text": "x", "highlight": True}]), Hit("m2", 2.0)]
    vectors = [Hit("m2", 0.9), Hit("m3", 0.8)]
    fused = reciprocal_rank_fusion([full, vectors])
    assert [hit.message_id for hit in fused] == ["m2", "m1", "m3"]  # m2 is in both lists
    assert fused[1].snippet == [{"text": "x", "highlight": True}]
