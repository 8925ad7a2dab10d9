"""People and sessions: setup link, login and its rate limit, sessions, CSRF, tokens, invitations."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from .support import OWNER, PASSWORD, Server, bot, invite, login, several_workers, toml_config


def test_setup_link_works_once_and_is_replaced_at_restart(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config(), create_owner=False).start()
    try:
        first = server.setup_token
        assert first.startswith("setup_")
        link = next(line for line in server.output if "setup#token=" in line)
        assert f"{server.url}/setup#token={first}" in link, "the link names the address really bound"
        server.restart()  # no owner yet: a new link, and the old one is dead
        second = server.setup_token
        assert second and second != first
        with httpx.Client(base_url=server.url) as client:
            stale = client.post("/v1/auth/setup", json={"token": first, **OWNER})
            assert stale.status_code == 410 and stale.json()["error"]["code"] == "setup_link_used"
            weak = client.post("/v1/auth/setup", json={"token": second, **OWNER, "password": "short"})
            assert weak.status_code == 400 and weak.json()["error"]["details"][0]["path"] == "password"
            created = client.post("/v1/auth/setup", json={"token": second, **OWNER})
            assert created.status_code == 201
            assert created.json()["user"]["role"] == "owner"
            cookie = created.headers["set-cookie"]
            assert "spacechat_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
            assert "session_token" not in created.json(), "a browser sign-in never exposes the reference to JS"
            again = client.post("/v1/auth/setup", json={"token": second, **OWNER})
            assert again.status_code == 410
        before = len(server.output)
        server.restart()
        assert server.setup_token == "", "with an owner, no setup link is printed"
        assert "setup#token=" not in "".join(server.output[before:])
    finally:
        server.stop()


def test_cookie_session_needs_csrf_for_writes(server: Server) -> None:
    general = server.channel_id("general")
    with httpx.Client(base_url=server.url) as browser:
        signed_in = browser.post(
            "/v1/auth/login", json={"email": OWNER["email"], "password": OWNER["password"], "device_name": "laptop"}
        )
        assert signed_in.status_code == 200
        csrf = signed_in.json()["csrf_token"]
        me = browser.get("/v1/me")  # the cookie alone is enough to read
        assert me.status_code == 200 and me.json()["csrf_token"] == csrf
        forged = browser.post(f"/v1/channels/{general}/messages", json={"text": "from evil.example"})
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
        wrong = browser.post(f"/v1/channels/{general}/messages", json={"text": "x"}, headers={"X-CSRF-Token": "0" * 40})
        assert wrong.status_code == 403
        ok = browser.post(f"/v1/channels/{general}/messages", json={"text": "legit"}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 201
        history = browser.get(f"/v1/threads/{ok.json()['thread']['id']}/history").json()["messages"]
        assert [m["text"] for m in history] == ["legit"]
    # A bearer request is never a CSRF: browsers do not add Authorization on their own.
    with httpx.Client(base_url=server.url, headers=server.auth) as api:
        assert api.post(f"/v1/channels/{general}/messages", json={"text": "api"}).status_code == 201


def test_tampered_and_foreign_session_references_are_refused(server: Server) -> None:
    reference = login(server, OWNER["email"], OWNER["password"]).json()["session_token"]
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {reference}"}).status_code == 200
        tampered = reference[:-3] + ("AAA" if not reference.endswith("AAA") else "BBB")
        for bad in (tampered, URLSafeTimedSerializer(b"another key", salt="spacechat-session").dumps("ses_x")):
            response = client.get("/v1/me", headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401 and response.json()["error"]["code"] == "session_invalid"
            with httpx.Client(base_url=server.url, cookies={"spacechat_session": bad}) as browser:
                assert browser.get("/v1/me").status_code == 401


def test_devices_can_be_listed_and_revoked(server: Server) -> None:
    member = invite(server, server.token, "member")
    other = login(server, member.user["email"], device_name="phone").json()["session_token"]
    with httpx.Client(base_url=server.url) as client:
        sessions = client.get("/v1/me/sessions", headers=member.auth).json()["sessions"]
        assert sorted(s["device_name"] for s in sessions) == ["browser", "phone"]
        assert sum(s["current"] for s in sessions) == 1
        phone = next(s for s in sessions if s["device_name"] == "phone")
        assert client.delete(f"/v1/me/sessions/{phone['id']}", headers=member.auth).status_code == 204
        gone = client.get("/v1/me", headers={"Authorization": f"Bearer {other}"})
        assert gone.status_code == 401
        # someone else's session is not yours to see
        owner_sessions = client.get(f"/v1/users/{server.owner['id']}/sessions", headers=server.auth).json()
        assert (
            client.delete(f"/v1/me/sessions/{owner_sessions['sessions'][0]['id']}", headers=member.auth).status_code
            == 404
        )
        # an admin ends anyone's session
        current = next(s for s in client.get("/v1/me/sessions", headers=member.auth).json()["sessions"] if s["current"])
        assert client.delete(f"/v1/sessions/{current['id']}", headers=server.auth).status_code == 204
        assert client.get("/v1/me", headers=member.auth).status_code == 401
        # logging out ends the session
        fresh = login(server, member.user["email"]).json()["session_token"]
        assert client.post("/v1/auth/logout", headers={"Authorization": f"Bearer {fresh}"}).status_code == 204
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 401


def test_sessions_and_tokens_expire(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config(auth={"session_days": 0.00002})).start()
    try:
        reference = login(server, OWNER["email"], OWNER["password"]).json()["session_token"]
        with httpx.Client(base_url=server.url) as client:
            short = client.post(
                "/v1/tokens",
                json={"name": "brief", "scopes": ["channels:read"], "expires_in_days": 0.00002},
                headers=server.auth,
            ).json()
            headers = {"Authorization": f"Bearer {reference}"}
            assert client.get("/v1/me", headers=headers).status_code == 200
            assert client.get("/v1/channels", headers={"Authorization": f"Bearer {short['secret']}"}).status_code == 200
            time.sleep(2.2)
            expired = client.get("/v1/me", headers=headers)
            assert expired.status_code == 401 and expired.json()["error"]["code"] == "session_invalid"
            token = client.get("/v1/channels", headers={"Authorization": f"Bearer {short['secret']}"})
            assert token.status_code == 401 and token.json()["error"]["code"] == "token_expired"
    finally:
        server.stop()


def test_login_is_rate_limited_per_account_and_per_address(server: Server) -> None:
    member = invite(server, server.token, "member")
    email = member.user["email"]
    for _ in range(5):
        wrong = login(server, email, "not the password")
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    blocked = login(server, email)  # even the right password waits out the window
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert login(server, OWNER["email"], OWNER["password"]).status_code == 200, "other accounts are not blocked"
    for i in range(15):  # 5 above + 15 = 20 failures from this address
        assert login(server, f"nobody{i}@example.com", "whatever").status_code == 401
    assert login(server, OWNER["email"], OWNER["password"]).status_code == 429
    with httpx.Client(base_url=server.url) as client:
        entries = client.get(
            "/v1/audit", params={"action": "auth.login_failed", "limit": 100}, headers=server.auth
        ).json()["entries"]
    assert len(entries) == 20
    assert all(e["outcome"] == "denied" for e in entries)
    assert all("password" not in e["details"] for e in entries)


def test_api_tokens_have_explicit_scopes(server: Server) -> None:
    member = invite(server, server.token, "member")
    general = server.channel_id("general")
    with httpx.Client(base_url=server.url) as client:
        created = client.post(
            "/v1/tokens", json={"name": "reader", "scopes": ["channels:read", "messages:read"]}, headers=member.auth
        )
        assert created.status_code == 201
        secret = created.json()["secret"]
        reader = {"Authorization": f"Bearer {secret}"}
        assert client.get(f"/v1/channels/{general}/threads", headers=reader).status_code == 200
        refused = client.post(f"/v1/channels/{general}/messages", json={"text": "hi"}, headers=reader)
        assert refused.status_code == 403 and refused.json()["error"]["details"]["scope"] == "messages:write"
        listed = client.get("/v1/tokens", headers=member.auth).json()["tokens"]
        assert [t["name"] for t in listed] == ["reader"] and "secret" not in listed[0]
        beyond = client.post("/v1/tokens", json={"name": "x", "scopes": ["audit:read"]}, headers=member.auth)
        assert beyond.status_code == 403 and beyond.json()["error"]["code"] == "scope_not_held"
        unknown = client.post("/v1/tokens", json={"name": "x", "scopes": ["everything"]}, headers=member.auth)
        assert unknown.status_code == 400
        # a token is cut down to its owner's current role
        admin = invite(server, server.token, "admin")
        made = client.post("/v1/tokens", json={"name": "audit", "scopes": ["audit:read"]}, headers=admin.auth).json()
        assert client.get("/v1/audit", headers={"Authorization": f"Bearer {made['secret']}"}).status_code == 200
        assert client.patch(f"/v1/users/{admin.id}", json={"role": "member"}, headers=server.auth).status_code == 200
        assert client.get("/v1/audit", headers={"Authorization": f"Bearer {made['secret']}"}).status_code == 403
        # revoke
        assert client.delete(f"/v1/tokens/{created.json()['token']['id']}", headers=member.auth).status_code == 204
        assert client.get("/v1/channels", headers=reader).status_code == 401
    stored = server.stored_bytes()
    assert secret.encode() not in stored and made["secret"].encode() not in stored


def test_invitations(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        made = client.post(
            "/v1/invitations", json={"role": "operator", "email": "Ops@Example.com"}, headers=server.auth
        ).json()
        assert made["link"].endswith(made["token"]) and "/invite#token=" in made["link"]
        peek = client.post("/v1/auth/invitations/lookup", json={"token": made["token"]}).json()
        assert peek["role"] == "operator" and peek["email"] == "ops@example.com"
        mismatch = client.post(
            "/v1/auth/invitations/accept",
            json={"token": made["token"], "email": "someone@example.com", "name": "S", "password": PASSWORD},
        )
        assert mismatch.status_code == 400
        accepted = client.post(
            "/v1/auth/invitations/accept",
            json={"token": made["token"], "email": "ops@example.com", "name": "Oz", "password": PASSWORD},
        )
        assert accepted.status_code == 201 and accepted.json()["user"]["role"] == "operator"
        used = client.post(
            "/v1/auth/invitations/accept",
            json={"token": made["token"], "email": "ops@example.com", "name": "Oz", "password": PASSWORD},
        )
        assert used.status_code == 410 and used.json()["error"]["code"] == "invitation_used"
        withdrawn = client.post("/v1/invitations", json={"role": "member"}, headers=server.auth).json()
        assert client.delete(f"/v1/invitations/{withdrawn['invitation']['id']}", headers=server.auth).status_code == 204
        gone = client.post("/v1/auth/invitations/lookup", json={"token": withdrawn["token"]})
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "invitation_revoked"
        brief = client.post(
            "/v1/invitations", json={"role": "member", "expires_in_hours": 0.0005}, headers=server.auth
        ).json()
        time.sleep(2)
        expired = client.post("/v1/auth/invitations/lookup", json={"token": brief["token"]})
        assert expired.status_code == 410 and expired.json()["error"]["code"] == "invitation_expired"
        nonsense = client.post("/v1/auth/invitations/lookup", json={"token": "inv_nope"})
        assert nonsense.status_code == 404


def test_roles_follow_the_rules(server: Server) -> None:
    admin = invite(server, server.token, "admin")
    member = invite(server, server.token, "member")
    with httpx.Client(base_url=server.url) as client:
        to_owner = client.patch(f"/v1/users/{member.id}", json={"role": "owner"}, headers=admin.auth)
        assert to_owner.status_code == 403 and to_owner.json()["error"]["code"] == "role_not_assignable"
        demote_owner = client.patch(f"/v1/users/{server.owner['id']}", json={"role": "member"}, headers=admin.auth)
        assert demote_owner.status_code == 403
        last = client.patch(f"/v1/users/{server.owner['id']}", json={"role": "admin"}, headers=server.auth)
        assert last.status_code == 409 and last.json()["error"]["code"] == "last_owner"
        assert client.patch(f"/v1/users/{member.id}", json={"role": "operator"}, headers=admin.auth).status_code == 200
        assert client.get("/v1/me", headers=member.auth).json()["role"] == "operator"
        by_member = client.patch(f"/v1/users/{admin.id}", json={"role": "guest"}, headers=member.auth)
        assert by_member.status_code == 403
        deactivated = client.post(f"/v1/users/{member.id}/deactivate", headers=admin.auth)
        assert deactivated.status_code == 200 and deactivated.json()["user"]["deactivated"] is True
        assert client.get("/v1/me", headers=member.auth).status_code == 401
        assert login(server, member.user["email"]).status_code == 401
        entries = client.get("/v1/audit", params={"action": "member."}, headers=server.auth).json()["entries"]
        actions = [e["action"] for e in entries]
        assert actions.count("member.role_changed") == 1 and "member.deactivated" in actions
        change = next(e for e in entries if e["action"] == "member.role_changed")
        assert change["details"] == {"from": "member", "to": "operator"} and change["actor"]["id"] == admin.id


def test_bots_act_as_agents(server: Server) -> None:
    robot = bot(server, server.token)
    general = server.channel_id("general")
    with httpx.Client(base_url=server.url) as client:
        me = client.get("/v1/me", headers=robot.auth).json()
        assert me["role"] == "agent" and me["actor"]["kind"] == "agent"
        posted = client.post(f"/v1/channels/{general}/messages", json={"text": "beep"}, headers=robot.auth)
        assert posted.json()["message"]["author"] == {"kind": "agent", "id": robot.id}
        assert client.get("/v1/audit", headers=robot.auth).status_code == 403


def test_secrets_never_leak(server: Server) -> None:
    member = invite(server, server.token, "member")
    reference = login(server, member.user["email"]).json()["session_token"]
    login(server, member.user["email"], "a wrong password entirely")
    if not several_workers():  # several workers share the signing secret through the database
        key = server.data_dir / "secret.key"
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    stored = server.stored_bytes()
    output = "".join(server.output)
    for secret in (PASSWORD, OWNER["password"], "a wrong password entirely", reference, member.token, server.token):
        assert secret.encode() not in stored
        assert secret not in output
    with httpx.Client(base_url=server.url) as client:
        audit = client.get("/v1/audit", params={"limit": 500}, headers=server.auth).text
    assert PASSWORD not in audit and reference not in audit and server.token not in audit


@pytest.mark.asyncio
async def test_revoking_a_session_ends_its_realtime_stream(server: Server) -> None:
    member = invite(server, server.token, "member")
    live, ended = asyncio.Event(), asyncio.Event()

    async def listen() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=member.auth, timeout=30) as client:
            async with client.stream("GET", "/v1/realtime/sse") as stream:
                assert stream.status_code == 200
                async for line in stream.aiter_lines():
                    if line == "event: ready":
                        live.set()
        ended.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(live.wait(), 20)  # the stream is open before its session is revoked
    async with httpx.AsyncClient(base_url=server.url) as client:
        current = next(
            s for s in (await client.get("/v1/me/sessions", headers=member.auth)).json()["sessions"] if s["current"]
        )
        assert (await client.delete(f"/v1/sessions/{current['id']}", headers=server.auth)).status_code == 204
    await asyncio.wait_for(ended.wait(), 5)
    await task
