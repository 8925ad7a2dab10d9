"""Search never returns what its caller may not read: generated over every role x every kind of
channel (public, private with and without the caller, direct conversations with and without
them) x both organisations, for the ranked path (words) and the operators-only path, as
tests/test_permissions_matrix.py does for routes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from spacechat_plugin.identity.permissions import ROLES

from .support import PASSWORD, Person, Server, bot, invite, toml_config

WORD = "quokkasearch"
# Channel kinds of the own organisation, and whether each role may read a message in it.
KINDS = ("public", "private_member", "private_other", "dm_own", "dm_other", "other_org_public", "other_org_private")


def may_read(role: str, kind: str) -> bool:
    if kind.startswith("other_org"):
        return False  # another tenant's: never, whatever the role
    if kind == "public":
        return role != "guest"  # guests see only channels they were added to
    return kind in ("private_member", "dm_own")


@dataclass
class World:
    server: Server
    people: dict[str, Person]
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (role, kind) -> the tag its message carries
    channel_names: dict[tuple[str, str], str] = field(default_factory=dict)
    answers: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def _post(server: Server, auth: dict[str, str], channel_id: str, text: str) -> None:
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
        response = client.post(f"/v1/channels/{channel_id}/messages", json={"text": text})
        assert response.status_code == 201, response.text


def _channel(client: httpx.Client, name: str, private: bool) -> dict[str, Any]:
    response = client.post("/v1/channels", json={"name": name, "private": private})
    assert response.status_code == 201, response.text
    return dict(response.json()["channel"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = Server(tmp_path_factory.mktemp("search-tenancy") / "data", toml_config()).start()
    owner = Person(server.owner, server.token)
    people = {"owner": owner}
    with httpx.Client(base_url=server.url, headers=owner.auth, timeout=30) as client:
        public = _channel(client, "pub", False)
        member_of = _channel(client, "priv-in", True)
        not_member = _channel(client, "priv-out", True)
        for role in ("admin", "operator", "member", "guest"):
            people[role] = invite(server, server.token, role, channel_ids=[member_of["id"]])
        people["agent"] = bot(server, server.token)
        client.post(f"/v1/channels/{member_of['id']}/members", json={"user_id": people["agent"].id})
        # Nobody of the matrix is in priv-out: its message is written before the owner leaves.
        _post(server, owner.auth, not_member["id"], f"{WORD} tagprivateother")
        assert client.delete(f"/v1/channels/{not_member['id']}/members/{owner.id}").status_code == 204
        stranger = invite(server, server.token, "member")
        # The other organisation, with its own public and private channel.
        org = client.post("/v1/orgs", json={"name": "Elsewhere"}).json()
        other = client.post(
            "/v1/auth/setup",
            json={
                "token": org["setup_token"],
                "email": "b@else.example",
                "name": "B",
                "password": PASSWORD,
                "return_token": True,
            },
        ).json()
    other_owner = Person(other["user"], other["session_token"])
    with httpx.Client(base_url=server.url, headers=other_owner.auth, timeout=30) as client:
        other_public = _channel(client, "pub", False)  # the same name as ours, on purpose
        other_private = _channel(client, "priv-in", True)
    w = World(server, people)
    shared = {
        "public": (public, owner),
        "private_member": (member_of, owner),
        "private_other": (not_member, None),  # written above
        "other_org_public": (other_public, other_owner),
        "other_org_private": (other_private, other_owner),
    }
    for kind, (channel, author) in shared.items():
        tag = "tag" + kind.replace("_", "")
        if author is not None:
            _post(server, author.auth, channel["id"], f"{WORD} {tag}")
        for role in ROLES:
            w.tags[(role, kind)] = tag
            w.channel_names[(role, kind)] = channel["name"]
    # Each role's own direct conversation with the stranger, which no other role is in.
    for role, person in people.items():
        with httpx.Client(base_url=server.url, headers=person.auth, timeout=30) as client:
            dm = client.post("/v1/dms", json={"user_ids": [stranger.id]}).json()["dm"]
        tag = "tagdm" + role
        _post(server, person.auth, dm["id"], f"{WORD} {tag}")
        w.tags[(role, "dm_own")] = tag
        for other_role in ROLES:
            if other_role != role:
                w.tags.setdefault((other_role, "dm_other"), tag)
    yield w
    server.stop()


def answer(world: World, role: str, path: str) -> set[str]:
    """The tags a role's search finds (asked once per role and path)."""
    key = (role, path)
    if key not in world.answers:
        params = {"q": WORD, "limit": "100"} if path == "words" else {"q": "after:2000-01-01", "limit": "100"}
        if path == "newest":
            params = {"q": WORD, "limit": "100", "sort": "newest"}
        with httpx.Client(base_url=world.server.url, headers=world.people[role].auth, timeout=30) as client:
            response = client.get("/v1/search", params=params)
        assert response.status_code == 200, response.text
        found: set[str] = set()
        for result in response.json()["results"]:
            found.update(t for t in result["message"]["text"].split() if t.startswith("tag"))
            assert result["message"]["org_id"] == world.people[role].user["org_id"]
        world.answers[key] = found
    return world.answers[key]


CASES = list(itertools.product(ROLES, KINDS, ("words", "newest", "operators")))


@pytest.mark.parametrize(("role", "kind", "path"), CASES)
def test_search_returns_only_what_the_role_may_read(world: World, role: str, kind: str, path: str) -> None:
    found = answer(world, role, path)
    tag = world.tags[(role, kind)]
    if may_read(role, kind):
        assert tag in found, f"{role} cannot find its {kind} message ({path})"
    else:
        assert tag not in found, f"{role} found a {kind} message it may not read ({path})"


@pytest.mark.parametrize(("role", "kind"), [(r, k) for r, k in itertools.product(ROLES, KINDS) if "dm" not in k])
def test_in_operator_names_only_readable_channels(world: World, role: str, kind: str) -> None:
    name = world.channel_names[(role, kind)]
    with httpx.Client(base_url=world.server.url, headers=world.people[role].auth, timeout=30) as client:
        response = client.get("/v1/search", params={"q": f"{WORD} in:#{name}"})
    # The other organisation's channels share our channels' names: `in:` finds ours, never theirs.
    ours = {"other_org_public": "public", "other_org_private": "private_member"}.get(kind, kind)
    if may_read(role, ours):
        assert response.status_code == 200, response.text
        tags = {t for r in response.json()["results"] for t in r["message"]["text"].split() if t.startswith("tag")}
        assert tags == {world.tags[(role, ours)]}
    else:
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_query"


def test_every_kind_has_a_case() -> None:
    # A kind added to KINDS without a place in the world would be checked against nothing.
    assert {kind for _, kind, _ in CASES} == set(KINDS)
