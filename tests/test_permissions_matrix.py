"""Every route x every role x own/other organisation x public/private channel gets the answer
docs/permissions.md documents, for callers of two organisations on one instance (issue 10): the
first, whose owner holds the instance role, and a second one. Agents and operations included: each
organisation has its own agent and provider. Any 2xx across organisations fails, and so does a 2xx
that mentions the other organisation's resources. A route without a row there, or a row without a
request here, fails the test."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from spacechat_plugin.api import V1_ROUTES
from spacechat_plugin.identity.permissions import ROLE_SCOPES, ROLES

from .support import PASSWORD, Person, Server, bot, invite, login, two_org_server, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "permissions.md").read_text()
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE|WS) (/v1/\S+)` \| (\S+) \| ([^|]+?) \|$", re.M)
TABLE = {f"{m} {p}": (scope, resource.strip()) for m, p, scope, resource in ROW.findall(DOC)}
CHANNEL_KINDS = {"channel", "thread", "message", "attachment", "task", "candidate", "memory", "memo"}
ORGS = ("A", "B")  # A: the first organisation (its owner holds the instance role); B: another
INSTANCE_WIDE = {"GET /v1/system/health"}  # routes whose answer covers the instance with instance:read
POLL = {
    "type": "poll",
    "block_id": "p",
    "question": "Matrix?",
    "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b"}],
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def route_keys() -> list[str]:
    keys = []
    for route in V1_ROUTES:
        if isinstance(route, WebSocketRoute):
            keys.append(f"WS /v1{route.path}")
        elif isinstance(route, Route):
            keys.extend(f"{method} /v1{route.path}" for method in sorted((route.methods or set()) - {"HEAD"}))
    return keys


@dataclass
class Place:
    """An organisation's fixtures: its owner, a target member, channels and their contents, and
    its own agent and model provider."""

    owner: Person
    target: Person
    agent: str
    provider: str
    channels: dict[str, dict[str, str]] = field(default_factory=dict)  # public/private -> ids
    token_id: str = ""
    invitation_id: str = ""
    user_export_id: str = ""
    incident_id: str = ""

    def ids(self) -> set[str]:
        """What of this organisation another may never see mentioned."""
        found = {self.owner.id, self.target.id, self.agent, self.token_id, self.invitation_id, self.incident_id}
        for contents in self.channels.values():
            found |= set(contents.values())
        return found


@dataclass
class World:
    server: Server
    people: dict[str, dict[str, Person]]  # org -> role -> person
    places: dict[str, Place]  # org -> its fixtures
    home: str = "A"  # the organisation of the caller of the case being run

    def client(self, person: Person) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=person.auth, timeout=30)


def _seed_place(server: Server, owner: Person, names: tuple[str, str], agent: str, provider: str) -> Place:
    target = invite(server, owner.token, "member")
    place = Place(owner, target, agent, provider)
    public_name, private_name = names
    with httpx.Client(base_url=server.url, headers=owner.auth, timeout=30) as client:
        for kind, name in (("public", public_name), ("private", private_name)):
            channel = client.post("/v1/channels", json={"name": name, "private": kind == "private"}).json()["channel"]
            upload = client.post(
                "/v1/uploads", params={"filename": "a.png"}, content=PNG, headers={"Content-Type": "image/png"}
            ).json()["attachment"]
            posted = client.post(
                f"/v1/channels/{channel['id']}/messages", json={"text": f"in {name}", "attachments": [upload["id"]]}
            ).json()
            task = client.post("/v1/tasks", json={"title": f"task in {name}", "channel_id": channel["id"]}).json()
            memo = client.post(
                "/v1/voice/memos", data={"channel_id": channel["id"]}, files={"file": ("m.ogg", MEMO, "audio/ogg")}
            )
            assert memo.status_code == 201, memo.text
            place.channels[kind] = {
                "channel": channel["id"],
                "thread": posted["thread"]["id"],
                "message": posted["message"]["id"],
                "attachment": upload["id"],
                "task": task["task"]["id"],
                "memo": memo.json()["memo"]["id"],
                **_seed_memory(client, channel["id"]),
            }
            if kind == "private":  # nobody in the matrix is a member: the owner leaves
                left = client.delete(f"/v1/channels/{channel['id']}/members/{owner.id}")
                assert left.status_code == 204
        token = client.post("/v1/tokens", json={"name": "t", "scopes": ["channels:read"]}, headers=target.auth)
        place.token_id = token.json()["token"]["id"]
        place.invitation_id = client.post("/v1/invitations", json={"role": "member"}).json()["invitation"]["id"]
        place.incident_id = client.post("/v1/incidents", json={"title": "matrix"}).json()["incident"]["id"]
    return place


def _people(server: Server, owner: Person) -> dict[str, Person]:
    return {
        "owner": owner,
        **{role: invite(server, owner.token, role) for role in ("admin", "operator", "member", "guest")},
        "agent": bot(server, owner.token),
    }


MEMO = b""  # a spoken clip (Ogg/Opus), made once the Piper voice is loaded


def _voted_candidate(client: httpx.Client, channel_id: str) -> str:
    """A poll vote in the channel; the candidate the memory policy (review by default) makes of it."""
    card = client.post(f"/v1/channels/{channel_id}/messages", json={"text": "poll", "blocks": [POLL]}).json()
    voted = client.post(
        "/v1/interactions",
        json={"message_id": card["message"]["id"], "action_id": "vote", "block_id": "p", "values": ["a"]},
    )
    assert voted.status_code == 201, voted.text

    def made() -> str | None:
        pending = client.get("/v1/memory/candidates", params={"limit": 200}).json()["candidates"]
        found = [c for c in pending if c["source"] == "interaction" and c["source_message_id"] == card["message"]["id"]]
        return found[0]["id"] if found else None

    return str(wait_until(made, timeout=20))


def _seed_memory(client: httpx.Client, channel_id: str) -> dict[str, str]:
    """A decided candidate and its memory, and a deleted memory, in the channel: past the checks,
    deciding again or deleting again answers 409."""
    candidate = _voted_candidate(client, channel_id)
    memory = client.post(f"/v1/memory/candidates/{candidate}/approve", json={}).json()["memory"]["id"]
    other = _voted_candidate(client, channel_id)
    deleted = client.post(f"/v1/memory/candidates/{other}/approve", json={}).json()["memory"]["id"]
    assert client.delete(f"/v1/memories/{deleted}").status_code == 204
    return {"candidate": candidate, "memory": memory, "deleted_memory": deleted}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, voice_model: Path, clip: Any) -> Iterator[World]:
    global MEMO
    MEMO = clip.files["ogg"]
    # Every role of both organisations posts a memo: room for all of them in the voice queue.
    server, globex = two_org_server(tmp_path_factory.mktemp("matrix") / "data", voice={"queue": 128})
    owner = Person(server.owner, server.token)
    # Like A's owner, B's acts through an API token (signing out ends a session, not a token).
    with httpx.Client(base_url=server.url, headers=globex.auth, timeout=30) as client:
        scopes = client.get("/v1/me").json()["scopes"]
        secret = client.post("/v1/tokens", json={"name": "matrix", "scopes": scopes}).json()["secret"]
    globex = Person(globex.user, secret)
    people = {"A": _people(server, owner), "B": _people(server, globex)}
    places = {
        "A": _seed_place(server, owner, ("pub-a", "priv-a"), "spacebot", "scripted"),
        "B": _seed_place(server, globex, ("pub-b", "priv-b"), "globex-bot", "scripted-b"),
    }
    yield World(server, people, places)
    if server.process is not None and server.process.poll() is not None:  # it died: say how
        print("the matrix's server exited:\n" + "".join(server.output[-120:]))
    server.stop()


@dataclass
class Call:
    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    expect: int | str | None = None  # overrides the documented rule for this principal
    credential: str | None = None  # a different credential of the same person


Builder = Callable[[World, str, str, str], Call]


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def fresh_member(world: World, org: str) -> Person:
    return invite(world.server, world.places[org].owner.token, "member")


def fresh_session(world: World, person: Person) -> str:
    email = person.user["email"]
    response = login(world.server, email, PASSWORD if person.user["role"] != "owner" else person.password)
    assert response.status_code == 200, response.text
    return str(response.json()["session"]["id"])


def ids(world: World, org: str, chan: str) -> dict[str, str]:
    return world.places[org].channels[chan]


def session_logout(world: World, role: str, org: str, chan: str) -> Call:
    person = world.people[world.home][role]
    if person.user["kind"] == "agent" or role == "owner":
        return Call("POST", "/v1/auth/logout")  # a token: nothing to end, still 204
    token = login(world.server, person.user["email"]).json()["session_token"]
    return Call("POST", "/v1/auth/logout", credential=token)


def revoke_my_session(world: World, role: str, org: str, chan: str) -> Call:
    person = world.people[world.home][role]
    if org != world.home:
        return Call("DELETE", f"/v1/me/sessions/{fresh_session(world, world.places[org].target)}")
    if person.user["kind"] == "agent" or role == "owner":
        return Call("DELETE", "/v1/me/sessions/ses_none", expect=404)  # tokens have no sessions
    return Call("DELETE", f"/v1/me/sessions/{fresh_session(world, person)}")


def delete_message(world: World, role: str, org: str, chan: str) -> Call:
    """A message of its own to delete (the matrix's shared ones stay): its place's owner writes
    it in the public channel; in the private one (nobody of the matrix is in it) the shared
    message answers 404 untouched. Deleting someone else's needs messages:moderate."""
    key = "DELETE /v1/messages/{message_id}"
    moderates = 200 if role in ("owner", "admin") else 403
    if chan == "private":
        return Call(
            "DELETE",
            f"/v1/messages/{ids(world, org, chan)['message']}",
            expect=expected(key, role, world.home, org, chan),
        )
    with world.client(world.places[org].owner) as client:
        posted = client.post(f"/v1/channels/{ids(world, org, chan)['channel']}/messages", json={"text": "delete me"})
    return Call(
        "DELETE",
        f"/v1/messages/{posted.json()['message']['id']}",
        expect=expected_or(key, role, world.home, org, chan, moderates),
    )


BUILDERS: dict[str, Builder] = {
    "POST /v1/auth/logout": session_logout,
    "GET /v1/me": lambda w, r, o, c: Call("GET", "/v1/me"),
    "PATCH /v1/me": lambda w, r, o, c: Call("PATCH", "/v1/me", json={"name": f"{r} renamed"}),
    "GET /v1/me/sessions": lambda w, r, o, c: Call("GET", "/v1/me/sessions"),
    "GET /v1/me/notifications": lambda w, r, o, c: Call("GET", "/v1/me/notifications"),
    "POST /v1/me/presence": lambda w, r, o, c: Call("POST", "/v1/me/presence", json={"status": "away"}),
    "GET /v1/presence": lambda w, r, o, c: Call("GET", "/v1/presence"),
    "DELETE /v1/me/sessions/{session_id}": revoke_my_session,
    "GET /v1/users": lambda w, r, o, c: Call("GET", "/v1/users"),
    "GET /v1/users/{user_id}": lambda w, r, o, c: Call("GET", f"/v1/users/{w.places[o].target.id}"),
    # The target has no picture: past the checks, the answer is 404.
    "GET /v1/users/{user_id}/avatar": lambda w, r, o, c: Call(
        "GET",
        f"/v1/users/{w.places[o].target.id}/avatar",
        expect=expected_or("GET /v1/users/{user_id}/avatar", r, w.home, o, c, 404),
    ),
    "PATCH /v1/users/{user_id}": lambda w, r, o, c: Call(
        "PATCH", f"/v1/users/{fresh_member(w, o).id}", json={"role": "operator"}
    ),
    "POST /v1/users/{user_id}/deactivate": lambda w, r, o, c: Call(
        "POST", f"/v1/users/{fresh_member(w, o).id}/deactivate"
    ),
    "GET /v1/users/{user_id}/sessions": lambda w, r, o, c: Call("GET", f"/v1/users/{w.places[o].target.id}/sessions"),
    "DELETE /v1/sessions/{session_id}": lambda w, r, o, c: Call(
        "DELETE", f"/v1/sessions/{fresh_session(w, w.places[o].target)}"
    ),
    "GET /v1/tokens": lambda w, r, o, c: Call("GET", "/v1/tokens"),
    "POST /v1/tokens": lambda w, r, o, c: Call("POST", "/v1/tokens", json={"name": "m", "scopes": ["channels:read"]}),
    "DELETE /v1/tokens/{token_id}": lambda w, r, o, c: Call("DELETE", f"/v1/tokens/{w.places[o].token_id}"),
    "POST /v1/bots": lambda w, r, o, c: Call("POST", "/v1/bots", json={"name": unique("bot")}),
    "GET /v1/invitations": lambda w, r, o, c: Call("GET", "/v1/invitations"),
    "POST /v1/invitations": lambda w, r, o, c: Call("POST", "/v1/invitations", json={"role": "member"}),
    "DELETE /v1/invitations/{invitation_id}": lambda w, r, o, c: Call(
        "DELETE", f"/v1/invitations/{w.places[o].invitation_id}"
    ),
    "POST /v1/orgs": lambda w, r, o, c: Call("POST", "/v1/orgs", json={"name": unique("org")}),
    "GET /v1/org": lambda w, r, o, c: Call("GET", "/v1/org"),
    "GET /v1/org/sso": lambda w, r, o, c: Call("GET", "/v1/org/sso"),
    # Never reached: the matrix's issuer is only stored (discovery is read at the first sign-in).
    "PUT /v1/org/sso": lambda w, r, o, c: Call(
        "PUT",
        "/v1/org/sso",
        json={"issuer": "https://idp.example.com", "client_id": f"matrix-{r}", "client_secret": unique("secret")},
    ),
    "DELETE /v1/org/sso": lambda w, r, o, c: Call("DELETE", "/v1/org/sso"),
    "GET /v1/teams": lambda w, r, o, c: Call("GET", "/v1/teams"),
    "POST /v1/teams": lambda w, r, o, c: Call("POST", "/v1/teams", json={"name": unique("team")}),
    "GET /v1/audit": lambda w, r, o, c: Call("GET", "/v1/audit"),
    "GET /v1/agents": lambda w, r, o, c: Call("GET", "/v1/agents"),
    "GET /v1/agents/{agent_id}/status": lambda w, r, o, c: Call("GET", f"/v1/agents/{w.places[o].agent}/status"),
    "GET /v1/system/health": lambda w, r, o, c: Call("GET", "/v1/system/health"),
    "GET /v1/usage": lambda w, r, o, c: Call("GET", "/v1/usage", params={"group_by": "agent"}),
    "POST /v1/ops/channels/{channel_id}/retry": lambda w, r, o, c: Call(
        "POST", f"/v1/ops/channels/{ids(w, o, c)['channel']}/retry", json={"reason": f"matrix {r}"}
    ),
    "POST /v1/ops/agents/{agent_id}/restart": lambda w, r, o, c: Call(
        "POST", f"/v1/ops/agents/{w.places[o].agent}/restart", json={"reason": f"matrix {r}"}
    ),
    "POST /v1/ops/providers/{name}/reconnect": lambda w, r, o, c: Call(
        "POST", f"/v1/ops/providers/{w.places[o].provider}/reconnect", json={"reason": f"matrix {r}"}
    ),
    "POST /v1/ops/instance/recover": lambda w, r, o, c: Call(
        "POST", "/v1/ops/instance/recover", json={"reason": f"matrix {r}"}
    ),
    "GET /v1/ops/pending": lambda w, r, o, c: Call("GET", "/v1/ops/pending"),
    # No operation waits for a second operator in this instance: every decision finds none.
    "POST /v1/ops/pending/{operation_id}/{decision}": lambda w, r, o, c: Call(
        "POST", "/v1/ops/pending/op_none/approve", expect=404
    ),
    "GET /v1/incidents/{incident_id}/timeline": lambda w, r, o, c: Call(
        "GET", f"/v1/incidents/{w.places[o].incident_id}/timeline"
    ),
    "POST /v1/incidents/{incident_id}/severity": lambda w, r, o, c: Call(
        "POST", f"/v1/incidents/{w.places[o].incident_id}/severity", json={"severity": "sev2"}
    ),
    "POST /v1/incidents/{incident_id}/roles": lambda w, r, o, c: Call(
        "POST", f"/v1/incidents/{w.places[o].incident_id}/roles", json={"role": "lead", "user_id": w.places[o].owner.id}
    ),
    "POST /v1/incidents/{incident_id}/updates": lambda w, r, o, c: Call(
        "POST", f"/v1/incidents/{w.places[o].incident_id}/updates", json={"text": f"update by {r}"}
    ),
    "POST /v1/incidents/{incident_id}/pins": lambda w, r, o, c: Call(
        "POST", f"/v1/incidents/{w.places[o].incident_id}/pins", json={"message_id": fresh_message(w, o)}
    ),
    "GET /v1/approvals": lambda w, r, o, c: Call("GET", "/v1/approvals"),
    "GET /v1/approvals/policies": lambda w, r, o, c: Call("GET", "/v1/approvals/policies"),
    "POST /v1/approvals/policies": lambda w, r, o, c: Call(
        "POST", "/v1/approvals/policies", json={"tool": f"matrix_{r}", "policy": "auto"}
    ),
    # No such policy or rule here: past the checks, the answer is 404.
    "DELETE /v1/approvals/policies/{agent_id}/{tool}": lambda w, r, o, c: Call(
        "DELETE",
        "/v1/approvals/policies/*/no_such_tool",
        expect=expected_or("DELETE /v1/approvals/policies/{agent_id}/{tool}", r, w.home, o, c, 404),
    ),
    "GET /v1/approvals/rules": lambda w, r, o, c: Call("GET", "/v1/approvals/rules"),
    "DELETE /v1/approvals/rules/{rule_id}": lambda w, r, o, c: Call(
        "DELETE",
        "/v1/approvals/rules/rule_none",
        expect=expected_or("DELETE /v1/approvals/rules/{rule_id}", r, w.home, o, c, 404),
    ),
    # No tool call waits for approval in this instance: every decision finds none.
    "POST /v1/approvals/{approval_id}/decide": lambda w, r, o, c: Call(
        "POST", "/v1/approvals/apv_none/decide", json={"decision": "deny"}, expect=404
    ),
    "GET /v1/threads/{thread_id}/timeline": lambda w, r, o, c: Call(
        "GET", f"/v1/threads/{ids(w, o, c)['thread']}/timeline"
    ),
    # The matrix's message is a person's, not a streaming reply: past the checks (which also ask
    # ops:retry of anyone who did not start the reply), 409.
    "POST /v1/messages/{message_id}/stop": lambda w, r, o, c: Call(
        "POST", f"/v1/messages/{ids(w, o, c)['message']}/stop", expect=stop_expected(r, w.home, o, c)
    ),
    "GET /v1/incidents": lambda w, r, o, c: Call("GET", "/v1/incidents"),
    "POST /v1/incidents": lambda w, r, o, c: Call("POST", "/v1/incidents", json={"title": f"by {r}"}),
    "GET /v1/incidents/{incident_id}": lambda w, r, o, c: Call("GET", f"/v1/incidents/{w.places[o].incident_id}"),
    "POST /v1/incidents/{incident_id}/actions/{action}": lambda w, r, o, c: Call(
        "POST", f"/v1/incidents/{w.places[o].incident_id}/actions/escalate", json={"to": "role:admin"}
    ),
    "GET /v1/channels/{channel_id}/metrics": lambda w, r, o, c: Call(
        "GET", f"/v1/channels/{ids(w, o, c)['channel']}/metrics"
    ),
    "GET /v1/threads/{thread_id}/metrics": lambda w, r, o, c: Call(
        "GET", f"/v1/threads/{ids(w, o, c)['thread']}/metrics"
    ),
    "GET /v1/channels": lambda w, r, o, c: Call("GET", "/v1/channels"),
    "POST /v1/channels": lambda w, r, o, c: Call("POST", "/v1/channels", json={"name": unique("ch")}),
    "GET /v1/channels/{channel_id}": lambda w, r, o, c: Call("GET", f"/v1/channels/{ids(w, o, c)['channel']}"),
    "PATCH /v1/channels/{channel_id}": lambda w, r, o, c: Call(
        "PATCH", f"/v1/channels/{ids(w, o, c)['channel']}", json={"topic": f"set by {r}"}
    ),
    "GET /v1/channels/{channel_id}/members": lambda w, r, o, c: Call(
        "GET", f"/v1/channels/{ids(w, o, c)['channel']}/members"
    ),
    "POST /v1/channels/{channel_id}/members": lambda w, r, o, c: Call(
        "POST", f"/v1/channels/{ids(w, o, c)['channel']}/members", json={"user_id": w.places[o].target.id}
    ),
    "DELETE /v1/channels/{channel_id}/members/{user_id}": lambda w, r, o, c: Call(
        "DELETE", f"/v1/channels/{ids(w, o, c)['channel']}/members/{w.places[o].target.id}"
    ),
    "POST /v1/channels/{channel_id}/join": lambda w, r, o, c: Call(
        "POST", f"/v1/channels/{ids(w, o, c)['channel']}/join"
    ),
    "POST /v1/channels/{channel_id}/read": lambda w, r, o, c: Call(
        "POST", f"/v1/channels/{ids(w, o, c)['channel']}/read", json={"seq": 1}
    ),
    "PUT /v1/channels/{channel_id}/notifications": lambda w, r, o, c: Call(
        "PUT", f"/v1/channels/{ids(w, o, c)['channel']}/notifications", json={"level": "muted"}
    ),
    "POST /v1/channels/{channel_id}/typing": lambda w, r, o, c: Call(
        "POST", f"/v1/channels/{ids(w, o, c)['channel']}/typing", json={"thread_id": ids(w, o, c)["thread"]}
    ),
    "GET /v1/channels/{channel_id}/threads": lambda w, r, o, c: Call(
        "GET", f"/v1/channels/{ids(w, o, c)['channel']}/threads"
    ),
    "POST /v1/channels/{channel_id}/messages": lambda w, r, o, c: Call(
        "POST", f"/v1/channels/{ids(w, o, c)['channel']}/messages", json={"text": f"hello from {r}"}
    ),
    "GET /v1/threads/{thread_id}": lambda w, r, o, c: Call("GET", f"/v1/threads/{ids(w, o, c)['thread']}"),
    "POST /v1/threads/{thread_id}/messages": lambda w, r, o, c: Call(
        "POST", f"/v1/threads/{ids(w, o, c)['thread']}/messages", json={"text": f"reply from {r}"}
    ),
    "GET /v1/threads/{thread_id}/history": lambda w, r, o, c: Call(
        "GET", f"/v1/threads/{ids(w, o, c)['thread']}/history"
    ),
    "GET /v1/messages/{message_id}": lambda w, r, o, c: Call("GET", f"/v1/messages/{ids(w, o, c)['message']}"),
    # Only its author (each place's owner) edits the matrix's message; anyone else who gets past
    # the checks is refused as not its author.
    "PATCH /v1/messages/{message_id}": lambda w, r, o, c: Call(
        "PATCH",
        f"/v1/messages/{ids(w, o, c)['message']}",
        json={"text": f"in {c}, edited"},
        expect=expected_or(
            "PATCH /v1/messages/{message_id}", r, w.home, o, c, 200 if r == "owner" and o == w.home else 403
        ),
    ),
    "DELETE /v1/messages/{message_id}": delete_message,
    "GET /v1/messages/{message_id}/edits": lambda w, r, o, c: Call(
        "GET", f"/v1/messages/{ids(w, o, c)['message']}/edits"
    ),
    "POST /v1/messages/{message_id}/reactions": lambda w, r, o, c: Call(
        "POST", f"/v1/messages/{ids(w, o, c)['message']}/reactions", json={"emoji": "👍"}
    ),
    "DELETE /v1/messages/{message_id}/reactions": lambda w, r, o, c: Call(
        "DELETE", f"/v1/messages/{ids(w, o, c)['message']}/reactions", params={"emoji": "👍"}
    ),
    "POST /v1/threads/{thread_id}/read": lambda w, r, o, c: Call(
        "POST", f"/v1/threads/{ids(w, o, c)['thread']}/read", json={"seq": 1}
    ),
    "GET /v1/inbox": lambda w, r, o, c: Call("GET", "/v1/inbox"),
    "POST /v1/inbox/read": lambda w, r, o, c: Call("POST", "/v1/inbox/read"),
    "GET /v1/dms": lambda w, r, o, c: Call("GET", "/v1/dms"),
    "POST /v1/dms": lambda w, r, o, c: Call("POST", "/v1/dms", json={"user_ids": []}),
    "POST /v1/messages/{message_id}/retry": lambda w, r, o, c: Call(
        "POST",
        f"/v1/messages/{ids(w, o, c)['message']}/retry",
        expect=expected_or("POST /v1/messages/{message_id}/retry", r, w.home, o, c, 409),
    ),
    "GET /v1/messages/{message_id}/render/{connector}": lambda w, r, o, c: Call(
        "GET", f"/v1/messages/{ids(w, o, c)['message']}/render/text"
    ),
    # The owner's message has no form: past the checks the owner and admins (channels:manage) get
    # 400 no_form; the others may read it but not its answers (403).
    "GET /v1/messages/{message_id}/responses": lambda w, r, o, c: Call(
        "GET",
        f"/v1/messages/{ids(w, o, c)['message']}/responses",
        expect=expected_or(
            "GET /v1/messages/{message_id}/responses", r, w.home, o, c, 400 if r in ("owner", "admin") else 403
        ),
    ),
    # The matrix's messages carry no card: past the checks, the answer is 422 no_card.
    "POST /v1/interactions": lambda w, r, o, c: Call(
        "POST",
        "/v1/interactions",
        json={"message_id": ids(w, o, c)["message"], "action_id": "x"},
        expect=expected_or("POST /v1/interactions", r, w.home, o, c, 422),
    ),
    "POST /v1/interactions/slack": lambda w, r, o, c: Call(
        "POST",
        "/v1/interactions/slack",
        json={"message_id": ids(w, o, c)["message"], "payload": {}},
        expect=expected_or("POST /v1/interactions/slack", r, w.home, o, c, 400),
    ),
    "POST /v1/interactions/discord": lambda w, r, o, c: Call(
        "POST",
        "/v1/interactions/discord",
        json={"message_id": ids(w, o, c)["message"], "payload": {}},
        expect=expected_or("POST /v1/interactions/discord", r, w.home, o, c, 400),
    ),
    "GET /v1/tasks": lambda w, r, o, c: Call("GET", "/v1/tasks"),
    "POST /v1/tasks": lambda w, r, o, c: Call("POST", "/v1/tasks", json={"title": f"by {r}"}),
    "GET /v1/tasks/{task_id}": lambda w, r, o, c: Call("GET", f"/v1/tasks/{ids(w, o, c)['task']}"),
    "PATCH /v1/tasks/{task_id}": lambda w, r, o, c: Call(
        "PATCH", f"/v1/tasks/{ids(w, o, c)['task']}", json={"priority": "low"}
    ),
    "POST /v1/tasks/{task_id}/actions/{action}": lambda w, r, o, c: Call(
        "POST", f"/v1/tasks/{ids(w, o, c)['task']}/actions/assign", json={"assignee_id": None}
    ),
    "GET /v1/tasks/{task_id}/comments": lambda w, r, o, c: Call("GET", f"/v1/tasks/{ids(w, o, c)['task']}/comments"),
    "POST /v1/tasks/{task_id}/comments": lambda w, r, o, c: Call(
        "POST", f"/v1/tasks/{ids(w, o, c)['task']}/comments", json={"text": f"from {r}"}
    ),
    "GET /v1/tasks/{task_id}/history": lambda w, r, o, c: Call("GET", f"/v1/tasks/{ids(w, o, c)['task']}/history"),
    "POST /v1/uploads": lambda w, r, o, c: Call(
        "POST", "/v1/uploads", content=PNG, headers={"Content-Type": "image/png"}, params={"filename": "m.png"}
    ),
    "GET /v1/attachments/{attachment_id}": lambda w, r, o, c: Call(
        "GET", f"/v1/attachments/{ids(w, o, c)['attachment']}"
    ),
    "GET /v1/me/memory": lambda w, r, o, c: Call("GET", "/v1/me/memory"),
    "PUT /v1/me/memory/consent": lambda w, r, o, c: Call("PUT", "/v1/me/memory/consent", json={"consent": "in"}),
    # A deleted memory, and about nobody but its owner: past the checks, 404 for everyone.
    "DELETE /v1/me/memories/{memory_id}": lambda w, r, o, c: Call(
        "DELETE", f"/v1/me/memories/{ids(w, o, 'public')['deleted_memory']}", expect=404
    ),
    "GET /v1/me/export": lambda w, r, o, c: Call("GET", "/v1/me/export"),
    "GET /v1/users/{user_id}/export": lambda w, r, o, c: Call("GET", f"/v1/users/{w.places[o].target.id}/export"),
    "GET /v1/memory/policies": lambda w, r, o, c: Call("GET", "/v1/memory/policies"),
    "PUT /v1/memory/policies/{scope_type}/{scope_id}": lambda w, r, o, c: Call(
        "PUT", f"/v1/memory/policies/channel/{ids(w, o, c)['channel']}", json={"ingestion": "review"}
    ),
    "GET /v1/memory/candidates": lambda w, r, o, c: Call("GET", "/v1/memory/candidates"),
    "GET /v1/memory/candidates/{candidate_id}": lambda w, r, o, c: Call(
        "GET", f"/v1/memory/candidates/{ids(w, o, c)['candidate']}"
    ),
    # The matrix's candidate was decided when it was made: past the checks, 409 already decided.
    "POST /v1/memory/candidates/{candidate_id}/{action}": lambda w, r, o, c: Call(
        "POST",
        f"/v1/memory/candidates/{ids(w, o, c)['candidate']}/reject",
        json={"reason": "matrix"},
        expect=expected_or("POST /v1/memory/candidates/{candidate_id}/{action}", r, w.home, o, c, 409),
    ),
    "GET /v1/memories": lambda w, r, o, c: Call("GET", "/v1/memories"),
    "GET /v1/memories/{memory_id}": lambda w, r, o, c: Call("GET", f"/v1/memories/{ids(w, o, c)['memory']}"),
    "PATCH /v1/memories/{memory_id}": lambda w, r, o, c: Call(
        "PATCH", f"/v1/memories/{ids(w, o, c)['memory']}", json={"importance": 0.5}
    ),
    "DELETE /v1/memories/{memory_id}": lambda w, r, o, c: Call(
        "DELETE",
        f"/v1/memories/{ids(w, o, c)['deleted_memory']}",
        expect=expected_or("DELETE /v1/memories/{memory_id}", r, w.home, o, c, 409),
    ),
    "POST /v1/memories/{memory_id}/rollback": lambda w, r, o, c: Call(
        "POST", f"/v1/memories/{ids(w, o, c)['memory']}/rollback", json={"revision": 1}
    ),
    "POST /v1/memories/{memory_id}/deliver": lambda w, r, o, c: Call(
        "POST", f"/v1/memories/{ids(w, o, c)['memory']}/deliver"
    ),
    "GET /v1/search": lambda w, r, o, c: Call("GET", "/v1/search", params={"q": "matrix poll", "mode": "hybrid"}),
    "GET /v1/realtime/sse": lambda w, r, o, c: Call("GET", "/v1/realtime/sse"),
    "WS /v1/realtime/ws": lambda w, r, o, c: Call("WS", "/v1/realtime/ws"),
    "GET /v1/voice": lambda w, r, o, c: Call("GET", "/v1/voice"),
    "POST /v1/voice/memos": lambda w, r, o, c: Call(
        "POST", "/v1/voice/memos", params={"channel_id": ids(w, o, c)["channel"]}, content=MEMO
    ),
    "GET /v1/voice/memos/{memo_id}": lambda w, r, o, c: Call("GET", f"/v1/voice/memos/{ids(w, o, c)['memo']}"),
    "GET /v1/voice/memos/{memo_id}/transcript": lambda w, r, o, c: Call(
        "GET", f"/v1/voice/memos/{ids(w, o, c)['memo']}/transcript"
    ),
    # The matrix's memos are people's recordings, not spoken replies: past the checks, 404.
    "GET /v1/voice/memos/{memo_id}/clips/{index}": lambda w, r, o, c: Call(
        "GET",
        f"/v1/voice/memos/{ids(w, o, c)['memo']}/clips/0",
        expect=expected_or("GET /v1/voice/memos/{memo_id}/clips/{index}", r, w.home, o, c, 404),
    ),
    "WS /v1/voice/live": lambda w, r, o, c: Call("WS", f"/v1/voice/live?channel_id={ids(w, o, c)['channel']}"),
    # The matrix's message is a person's: past the checks, only an agent's reply can be read aloud.
    "POST /v1/voice/speech": lambda w, r, o, c: Call(
        "POST",
        "/v1/voice/speech",
        json={"message_id": ids(w, o, c)["message"]},
        expect=expected_or("POST /v1/voice/speech", r, w.home, o, c, 422),
    ),
}


def expected(key: str, role: str, home: str, org: str, chan: str) -> int | str:
    """The documented answer for `role` of organisation `home` acting on a resource of `org`."""
    scope, resource = TABLE[key]
    if resource == "instance":  # the scope, and the instance role (held by A's first owner only)
        return "ok" if scope in ROLE_SCOPES[role] and (home, role) == ("A", "owner") else 403
    if resource != "-" and org != home:
        return 404
    if resource in CHANNEL_KINDS and (chan == "private" or role == "guest"):
        return 404
    if scope == "any" or scope in ROLE_SCOPES[role]:
        return "ok"
    return 403


def fresh_message(world: World, org: str) -> str:
    """A new message in the organisation's public channel (each pin pins a message once)."""
    place = world.places[org]
    with httpx.Client(base_url=world.server.url, headers=place.owner.auth, timeout=30) as client:
        posted = client.post(f"/v1/channels/{place.channels['public']['channel']}/messages", json={"text": "pin me"})
        return str(posted.json()["message"]["id"])


def stop_expected(role: str, home: str, org: str, chan: str) -> int | str:
    answer = expected("POST /v1/messages/{message_id}/stop", role, home, org, chan)
    if answer != "ok":
        return answer
    return 409 if "ops:retry" in ROLE_SCOPES[role] else 403


def expected_or(key: str, role: str, home: str, org: str, chan: str, allowed: int) -> int | str:
    """The documented answer, except that where access is allowed the route answers `allowed`
    (e.g. the matrix's message is a person's, which cannot be retried: 409 after the checks)."""
    answer = expected(key, role, home, org, chan)
    return allowed if answer == "ok" else answer


def cases() -> list[tuple[str, str, str, str, str]]:
    """(route, role, the caller's organisation, the resource's, public or private channel)."""
    out: list[tuple[str, str, str, str, str]] = []
    for key, (scope, resource) in sorted(TABLE.items()):
        if scope == "public":
            continue
        chans = ["public", "private"] if resource in CHANNEL_KINDS else ["public"]
        for home, role in itertools.product(ORGS, ROLES):
            orgs = ORGS if resource not in ("-", "instance") else (home,)
            out.extend((key, role, home, org, chan) for org, chan in itertools.product(orgs, chans))
    return out


def perform(world: World, call: Call, person: Person) -> tuple[int, str]:
    """The status, and the body of a success (checked for the other organisation's ids)."""
    token = call.credential or person.token
    headers = {"Authorization": f"Bearer {token}", **call.headers}
    if call.method == "WS":
        url = world.server.url.replace("http://", "ws://") + call.path
        try:
            with ws_connect(url, additional_headers=headers, open_timeout=10) as ws:
                ws.recv(timeout=5)
        except InvalidStatus as refused:
            return refused.response.status_code, ""
        return 101, ""
    with httpx.Client(base_url=world.server.url, timeout=30) as client:
        if call.path == "/v1/realtime/sse":
            with client.stream("GET", call.path, headers=headers) as response:
                return response.status_code, ""
        if call.path == "/v1/voice/memos":
            fields = {"channel_id": call.params["channel_id"]}
            files = {"file": ("m.ogg", call.content or b"", "audio/ogg")}
            response = client.post(call.path, data=fields, files=files, headers=headers)
        else:
            response = client.request(
                call.method, call.path, json=call.json, content=call.content, headers=headers, params=call.params
            )
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error"} and body["error"]["code"], response.text
            if response.status_code == 403:
                assert body["error"]["details"]["scope"], "a 403 names the missing scope"
        return response.status_code, response.text


def test_every_route_is_documented_and_has_a_request() -> None:
    keys = route_keys()
    undocumented = [key for key in keys if key not in TABLE]
    assert not undocumented, f"docs/permissions.md has no row for {undocumented}"
    stale = [key for key in TABLE if key not in keys]
    assert not stale, f"docs/permissions.md documents routes that do not exist: {stale}"
    missing = [key for key, (scope, _) in TABLE.items() if scope != "public" and key not in BUILDERS]
    assert not missing, f"no request in the matrix for {missing}"


def test_documented_scopes_match_the_code() -> None:
    for route in V1_ROUTES:
        if not isinstance(route, Route):
            continue
        operation = route.endpoint.__spacechat_operation__  # type: ignore[attr-defined]
        for method in (route.methods or set()) - {"HEAD"}:
            assert TABLE[f"{method} /v1{route.path}"][0] == operation.scope, f"{method} {route.path}"


@pytest.mark.parametrize(("key", "role", "home", "org", "chan"), cases())
def test_route_answers_as_documented(world: World, key: str, role: str, home: str, org: str, chan: str) -> None:
    world.home = home
    call = BUILDERS[key](world, role, org, chan)
    want = call.expect if call.expect is not None else expected(key, role, home, org, chan)
    got, body = perform(world, call, world.people[home][role])
    where = f"{key} as {home}'s {role} ({org}'s resource, {chan})"
    if want == "ok":
        assert 200 <= got < 300 or got == 101, f"{where}: {got}, expected success"
    else:
        assert got == want, f"{where}: {got}, expected {want}"
    # The instance's operator (A's owner) sees every organisation's agents in the instance-wide
    # figures of health, by the instance role's `instance:read`: that is no leak.
    instance_view = key in INSTANCE_WIDE and (home, role) == ("A", "owner")
    if 200 <= got < 300 and not instance_view:
        other = world.places[next(o for o in ORGS if o != home)]
        leaked = sorted(found for found in other.ids() if found and found in body)
        assert not leaked, f"{where} shows the other organisation's {leaked}"


def test_role_table_matches_the_code() -> None:
    rows = re.findall(r"^\| `([a-z]+:[a-z]+)` \|((?: [✓ ]? \|){6})$", DOC, re.M)
    table = {scope: [cell.strip() == "✓" for cell in cells.split("|")[:-1]] for scope, cells in rows}
    for scope, marks in table.items():
        holders = {role for role, mark in zip(ROLES, marks, strict=True) if mark}
        assert holders == {role for role in ROLES if scope in ROLE_SCOPES[role]}, scope
    assert set(table) == set().union(*ROLE_SCOPES.values())
