"""Bad input and careless clients never do harm (issue 10): every error is in the one JSON shape
(routing 404 and 405 included, with a correct Allow), text people read refuses characters that
make it display as something else, a client hanging up is not our error, uploads keep the event
loop free, and the login rate limiter's memory is bounded."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacechat_plugin.api import build_api
from spacechat_plugin.app import Spacechat
from spacechat_plugin.config import load_settings
from spacechat_plugin.identity.auth import RateLimiter

from .support import OWNER, Server, wait_until


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return dict(body["error"])


def test_routing_errors_are_json_with_a_correct_allow(shared_server: Server) -> None:
    with shared_server.sync_client() as client:
        # The probe's path: a newline in a segment used to fall through to the web UI's text 404.
        assert_json_error(client.get("/v1/channels/a%0Ab"), 404)
        assert_json_error(client.get("/v1/no-such-thing"), 404)
        assert_json_error(client.get("/v1"), 404)
        not_allowed = client.put("/v1/channels", json={})
        assert_json_error(not_allowed, 405)
        assert set(not_allowed.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
        task = client.put("/v1/tasks/task_x", json={})
        assert set(task.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
        assert_json_error(client.delete("/v1/me"), 405)


def test_an_empty_channel_id_is_a_clear_404_naming_it(shared_server: Server) -> None:
    with shared_server.sync_client() as client:
        # It was a 500 (`FOREIGN KEY constraint failed`); no channel has that id: 404, as any other.
        error = assert_json_error(client.post("/v1/tasks", json={"title": "x", "channel_id": ""}), 404)
        assert error["details"] == [{"path": "channel_id", "message": "unknown"}]


@pytest.mark.parametrize(
    "bad",
    ["Olive\u202eevilO", "two\nlines", "bell\x07", "isolate\u2066x\u2069", "c1\x85", "sep\u2028x"],
)
def test_text_people_read_refuses_control_and_bidi_characters(shared_server: Server, bad: str) -> None:
    with shared_server.sync_client() as client:
        before = client.get("/v1/me").json()["user"]["name"]
        for method, path, body in (
            ("PATCH", "/v1/me", {"name": bad}),
            ("POST", "/v1/teams", {"name": bad}),
            ("POST", "/v1/tasks", {"title": bad}),
            ("POST", "/v1/incidents", {"title": bad}),
            ("POST", "/v1/channels", {"name": "fine-name", "topic": bad}),
            ("POST", "/v1/bots", {"name": bad}),
            ("POST", "/v1/tokens", {"name": bad, "scopes": ["channels:read"]}),
        ):
            error = assert_json_error(client.request(method, path, json=body), 422)
            assert error["code"] == "unsafe_text", (path, error)
            assert "control or bidirectional-override character" in error["message"]
        assert client.get("/v1/me").json()["user"]["name"] == before, "nothing was stored"
        assert "fine-name" not in {c["name"] for c in client.get("/v1/channels").json()["channels"]}
        # Every script, accents and emoji are names like any other.
        fine = client.patch("/v1/me", json={"name": "Zoë 李 — עברית 🚀"})
        assert fine.status_code == 200 and fine.json()["user"]["name"] == "Zoë 李 — עברית 🚀"
        client.patch("/v1/me", json={"name": before})


def test_a_nul_character_in_a_request_reads_as_a_replacement_character_on_every_store(
    shared_server: Server,
) -> None:
    """U+0000 can be neither stored in nor compared with Postgres's text: anywhere in a request it
    was a 500 there (found by test_schemathesis.py on Postgres), and a search holding one was a
    500 on SQLite. It reads as U+FFFD on both stores, as CommonMark reads it in Markdown: an id or
    a filter holding one matches nothing, as on SQLite before, and text keeps the character's place."""
    with shared_server.sync_client() as client:
        general = shared_server.channel_id("general")
        for method, path, options, status in (
            ("GET", "/v1/channels/ch%00x", {}, 404),
            ("GET", "/v1/usage", {"params": {"thread": "a\x00b"}}, 200),
            ("GET", "/v1/memories", {"params": {"subject_id": "a\x00b"}}, 200),
            ("GET", "/v1/audit", {"params": {"action": "a\x00b"}}, 200),
            ("GET", "/v1/search", {"params": {"q": "heron\x00"}}, 200),
            ("POST", "/v1/interactions", {"json": {"message_id": "msg\x00", "action_id": "x"}}, 404),
            ("POST", "/v1/voice/memos", {"data": {"channel_id": "ch\x00"}, "files": {"file": ("m.ogg", b"OggS")}}, 404),
        ):
            answer = client.request(method, path, **options)
            assert answer.status_code == status, (path, answer.text)
        assert client.get("/v1/usage", params={"thread": "a\x00b"}).json()["rows"] == []
        assert client.get("/v1/memories", params={"subject_id": "a\x00b"}).json()["memories"] == []
        assert client.get("/v1/audit", params={"action": "a\x00b"}).json()["entries"] == []
        card = [{"type": "section", "text": "card\x00text"}]
        posted = client.post(f"/v1/channels/{general}/messages", json={"text": "hello\x00world", "blocks": card})
        assert posted.status_code == 201, posted.text
        message = posted.json()["message"]
        assert message["text"] == "hello\ufffdworld" and message["blocks"] == [
            {"type": "section", "text": "card\ufffdtext"}
        ]
        stored = shared_server.query(f"SELECT text FROM messages WHERE id = '{message['id']}'")
        assert stored == [("hello\ufffdworld",)]
        # A name people read still refuses it, as it refuses every control character.
        error = assert_json_error(client.patch("/v1/me", json={"name": "Olive\x00"}), 422)
        assert error["code"] == "unsafe_text"


def test_a_client_hanging_up_mid_body_is_logged_at_info(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    host, port = shared_server.url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/channels/{general}/messages HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {shared_server.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
        '{"text": "half'
    )
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(request.encode())
    line = wait_until(lambda: next((x for x in shared_server.output if "disconnected before" in x), None))
    assert '"level": "INFO"' in line
    assert not any("unhandled error" in x for x in shared_server.output)


@pytest.fixture
async def in_process(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    """The real API and store in this process (no agent host), to see which thread does what."""
    settings = load_settings(environ={}, overrides={"enabled": True, "data_dir": str(tmp_path / "data")})
    app = Spacechat(settings, None)
    await app.start()
    secret = app._setup_secret
    try:
        transport = httpx.ASGITransport(app=build_api(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            owner = await client.post("/auth/setup", json={"token": secret, **OWNER, "return_token": True})
            client.headers["Authorization"] = f"Bearer {owner.json()['session_token']}"
            yield client, tmp_path / "data" / "attachments"
    finally:
        await app.stop()


async def test_uploads_write_and_fsync_off_the_event_loop(
    in_process: tuple[httpx.AsyncClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    client, attachments = in_process
    seen: list[tuple[str, str]] = []
    real_write, real_fsync = os.write, os.fsync

    def into_attachments(fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(str(attachments))
        except OSError:
            return False

    def write(fd: int, data: Any) -> int:
        if into_attachments(fd):
            seen.append(("write", threading.current_thread().name))
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        if into_attachments(fd):
            seen.append(("fsync", threading.current_thread().name))
        real_fsync(fd)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    body = b"\x89PNG\r\n\x1a\n" + bytes(3 * 1024 * 1024)
    uploaded = await client.post(
        "/uploads", params={"filename": "big.png"}, content=body, headers={"Content-Type": "image/png"}
    )
    assert uploaded.status_code == 201, uploaded.text
    assert {kind for kind, _ in seen} == {"write", "fsync"}
    loop_thread = threading.current_thread().name
    assert all(thread != loop_thread for _, thread in seen), f"file I/O on the event loop's thread: {seen}"


def test_the_login_rate_limiter_forgets_old_keys() -> None:
    now = [0.0]
    limiter = RateLimiter(limit=20, window=900, clock=lambda: now[0], max_keys=1000)
    for _ in range(20):
        limiter.hit("10.0.0.1")
    assert limiter.blocked_for("10.0.0.1") > 0
    # A sweep of addresses: memory stays bounded, the hot key that is still hitting stays blocked.
    for i in range(20_000):
        limiter.hit(f"192.168.{i // 250}.{i % 250}")
        if i % 500 == 0:
            limiter.hit("10.0.0.1")
    assert len(limiter) <= 1000
    assert limiter.blocked_for("10.0.0.1") > 0
    # Asking never adds a key; once the window has passed, old keys go.
    for i in range(100):
        limiter.blocked_for(f"172.16.0.{i}")
    assert len(limiter) <= 1000
    now[0] += 901
    limiter.hit("fresh")
    assert len(limiter) == 1, "every key idle for a whole window is forgotten"
    assert limiter.blocked_for("10.0.0.1") == 0
