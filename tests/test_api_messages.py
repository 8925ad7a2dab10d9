"""Messaging over real HTTP: post, history, idempotency, bad input, attachments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spacechat_plugin.store.shapes import title_of as _title

from .support import Server

pytestmark = pytest.mark.asyncio


def db_counts(server: Server) -> dict[str, int]:
    return {
        table: server.query(f"SELECT COUNT(*) FROM {table}")[0][0]
        for table in ("messages", "threads", "events", "attachments", "idempotency_keys")
    }


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    error: dict[str, Any] = body["error"]
    return error


async def test_post_opens_thread_and_reply_lands_in_it(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    async with shared_server.client() as client:
        first = await client.post(
            f"/v1/channels/{general}/messages", json={"text": "Deploy **today**?\n```py\nprint(1)\n```"}
        )
        assert first.status_code == 201
        message, thread = first.json()["message"], first.json()["thread"]
        assert thread["title"] == "Deploy today? print(1)", "titles are plain text"
        assert message["state"] == "completed"
        assert message["text"].startswith("Deploy **today**?")
        assert thread["root_message_id"] == message["id"]
        assert thread["channel_id"] == general
        reply = await client.post(f"/v1/threads/{thread['id']}/messages", json={"text": "yes"})
        assert reply.status_code == 201
        assert reply.json()["message"]["thread_id"] == thread["id"]
        assert reply.json()["thread"]["reply_count"] == 1
        history = (await client.get(f"/v1/threads/{thread['id']}/history")).json()
        assert [m["text"] for m in history["messages"]][-1] == "yes"
        assert history["messages"][0]["id"] == message["id"]
        threads = (await client.get(f"/v1/channels/{general}/threads")).json()["threads"]
        assert threads[0]["id"] == thread["id"]


async def test_history_pages_both_ways(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    async with shared_server.client() as client:
        root = (await client.post(f"/v1/channels/{general}/messages", json={"text": "m0"})).json()
        thread_id = root["thread"]["id"]
        for i in range(1, 25):
            assert (await client.post(f"/v1/threads/{thread_id}/messages", json={"text": f"m{i}"})).status_code == 201
        newest = (await client.get(f"/v1/threads/{thread_id}/history", params={"limit": 10})).json()
        assert [m["text"] for m in newest["messages"]] == [f"m{i}" for i in range(15, 25)]
        assert newest["cursors"]["after"] is None
        older = (
            await client.get(
                f"/v1/threads/{thread_id}/history", params={"limit": 10, "before": newest["cursors"]["before"]}
            )
        ).json()
        assert [m["text"] for m in older["messages"]] == [f"m{i}" for i in range(5, 15)]
        oldest = (
            await client.get(
                f"/v1/threads/{thread_id}/history", params={"limit": 10, "before": older["cursors"]["before"]}
            )
        ).json()
        assert [m["text"] for m in oldest["messages"]] == [f"m{i}" for i in range(0, 5)]
        assert oldest["cursors"]["before"] is None
        forward = (
            await client.get(
                f"/v1/threads/{thread_id}/history", params={"limit": 10, "after": oldest["cursors"]["after"]}
            )
        ).json()
        assert [m["text"] for m in forward["messages"]] == [f"m{i}" for i in range(5, 15)]
        assert forward["cursors"]["after"] is not None


async def test_idempotent_retry_returns_the_original(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    async with shared_server.client() as client:
        headers = {"Idempotency-Key": "retry-1"}
        first = await client.post(f"/v1/channels/{general}/messages", json={"text": "once"}, headers=headers)
        again = await client.post(f"/v1/channels/{general}/messages", json={"text": "once"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["message"]["id"] == first.json()["message"]["id"]
        by_body = await client.post(f"/v1/channels/{general}/messages", json={"text": "twice", "client_msg_id": "cm-1"})
        by_body_again = await client.post(
            f"/v1/channels/{general}/messages", json={"text": "twice", "client_msg_id": "cm-1"}
        )
        assert by_body_again.json()["message"]["id"] == by_body.json()["message"]["id"]
        reused = await client.post(f"/v1/channels/{general}/messages", json={"text": "different"}, headers=headers)
        assert_error(reused, 422, "idempotency_key_reused")
        thread_id = first.json()["thread"]["id"]
        history = (await client.get(f"/v1/threads/{thread_id}/history")).json()
        assert [m["text"] for m in history["messages"]] == ["once"]


async def test_concurrent_duplicates_create_one_message(server: Server) -> None:
    general = server.channel_id("general")
    before = db_counts(server)
    async with server.client() as client:
        responses = await asyncio.gather(
            *[
                client.post(
                    f"/v1/channels/{general}/messages", json={"text": "race"}, headers={"Idempotency-Key": "race-1"}
                )
                for _ in range(20)
            ]
        )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "idempotency_key_in_use")
    ids = {r.json()["message"]["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    after = db_counts(server)
    assert after["messages"] - before["messages"] == 1
    # keys survive a restart: the same key after a restart returns the original message
    server.restart()
    async with server.client() as client:
        replay = await client.post(
            f"/v1/channels/{general}/messages", json={"text": "race"}, headers={"Idempotency-Key": "race-1"}
        )
    assert replay.json()["message"]["id"] in ids
    assert replay.headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({}, {}, 400, "invalid_request"),
        ({"text": 5}, {}, 400, "invalid_request"),
        ({"text": "hi", "format": "html"}, {}, 400, "invalid_request"),
        ({"text": "hi", "surprise": True}, {}, 400, "invalid_request"),
        ({"text": "   "}, {}, 400, "invalid_request"),
        ({"text": "x" * 40001}, {}, 400, "invalid_request"),
        ({"text": "hi", "attachments": "att_1"}, {}, 400, "invalid_request"),
        ({"text": "hi", "attachments": ["att_00000000000000000000000000000000"]}, {}, 422, "unknown_attachment"),
        ({"text": "hi"}, {"Idempotency-Key": "bad key with spaces"}, 400, "invalid_idempotency_key"),
        ({"text": "hi", "client_msg_id": "a"}, {"Idempotency-Key": "b"}, 400, "invalid_idempotency_key"),
    ],
)
async def test_bad_bodies_are_refused_and_nothing_is_written(
    shared_server: Server, body: dict[str, Any], headers: dict[str, str], status: int, code: str
) -> None:
    general = shared_server.channel_id("general")
    before = db_counts(shared_server)
    async with shared_server.client() as client:
        response = await client.post(f"/v1/channels/{general}/messages", json=body, headers=headers)
    error = assert_error(response, status, code)
    if code == "invalid_request" and body.get("text") != "   ":
        assert error["details"], "validation errors name the bad path"
    assert db_counts(shared_server) == before


async def test_malformed_requests(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    before = db_counts(shared_server)
    async with shared_server.client() as client:
        url = f"/v1/channels/{general}/messages"
        assert_error(
            await client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "invalid_json",
        )
        assert_error(await client.post(url, content=b"text=hi", headers={"Content-Type": "text/plain"}), 415)
        huge = b'{"text": "' + b"a" * 1_100_000 + b'"}'
        assert_error(await client.post(url, content=huge, headers={"Content-Type": "application/json"}), 413)
        assert_error(await client.post("/v1/channels/ch_nope/messages", json={"text": "hi"}), 404)
        assert_error(await client.post("/v1/threads/th_nope/messages", json={"text": "hi"}), 404)
        assert_error(await client.get("/v1/threads/th_nope/history"), 404)
        assert_error(await client.get("/v1/messages/msg_nope"), 404)
        assert_error(await client.get("/v1/no/such/route"), 404)
        assert_error(await client.delete(url), 405)
        root = (await client.get(f"/v1/channels/{general}/threads")).json()["threads"]
        if root:
            thread_history = f"/v1/threads/{root[0]['id']}/history"
            assert_error(await client.get(thread_history, params={"limit": "0"}), 400)
            assert_error(await client.get(thread_history, params={"before": "abc"}), 400)
            assert_error(await client.get(thread_history, params={"before": "1", "after": "2"}), 400)
    async with httpx.AsyncClient(base_url=shared_server.url) as anonymous:
        assert_error(await anonymous.post(url, json={"text": "hi"}), 401, "unauthorized")
        assert_error(await anonymous.get("/v1/channels", headers={"Authorization": "Bearer sc_wrong"}), 401)
    assert db_counts(shared_server) == before


async def test_upload_and_download_attachment(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    async with shared_server.client() as client:
        uploaded = await client.post(
            "/v1/uploads", params={"filename": "../../chart.png"}, content=png, headers={"Content-Type": "image/png"}
        )
        assert uploaded.status_code == 201, uploaded.text
        attachment = uploaded.json()["attachment"]
        assert attachment["filename"] == "chart.png"
        assert attachment["size"] == len(png)
        posted = await client.post(
            f"/v1/channels/{general}/messages", json={"text": "see chart", "attachments": [attachment["id"]]}
        )
        assert posted.status_code == 201
        assert posted.json()["message"]["attachments"][0]["id"] == attachment["id"]
        again = await client.post(
            f"/v1/channels/{general}/messages", json={"text": "reuse", "attachments": [attachment["id"]]}
        )
        assert_error(again, 422, "attachment_in_use")
        download = await client.get(attachment["url"])
        assert download.status_code == 200
        assert download.content == png
        assert download.headers["content-type"] == "image/png"
        assert download.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in download.headers["content-security-policy"]
        assert download.headers["content-disposition"].startswith("inline")
        partial = await client.get(attachment["url"], headers={"Range": "bytes=0-7"})
        assert partial.status_code == 206
        assert partial.content == png[:8]
        forced = await client.get(attachment["url"], params={"download": "1"})
        assert forced.headers["content-disposition"].startswith("attachment")


async def test_upload_limits(shared_server: Server) -> None:
    before = db_counts(shared_server)
    async with shared_server.client() as client:
        assert_error(
            await client.post(
                "/v1/uploads", params={"filename": "a.html"}, content=b"<script>", headers={"Content-Type": "text/html"}
            ),
            415,
        )
        lying = await client.post(
            "/v1/uploads",
            params={"filename": "x.png"},
            content=b"<html><script>alert(1)",
            headers={"Content-Type": "image/png"},
        )
        assert_error(lying, 415, "content_mismatch")
        assert_error(await client.post("/v1/uploads", content=b"hello", headers={"Content-Type": "text/plain"}), 400)
        big = b"a" * (26_214_400 + 1)
        assert_error(
            await client.post(
                "/v1/uploads", params={"filename": "big.txt"}, content=big, headers={"Content-Type": "text/plain"}
            ),
            413,
        )

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced while streaming
            for _ in range(27):
                yield b"a" * 1_000_000

        assert_error(
            await client.post(
                "/v1/uploads", params={"filename": "big.txt"}, content=chunks(), headers={"Content-Type": "text/plain"}
            ),
            413,
        )
        text = await client.post(
            "/v1/uploads",
            params={"filename": "notes.md"},
            content="# hi ünïcode".encode(),
            headers={"Content-Type": "text/markdown"},
        )
        assert text.status_code == 201
        download = await client.get(text.json()["attachment"]["url"])
        assert download.headers["content-disposition"].startswith("attachment")
    after = db_counts(shared_server)
    assert after["attachments"] == before["attachments"] + 1
    leftovers = [p for p in (shared_server.data_dir / "attachments").rglob("*") if p.is_file()]
    assert not [p for p in leftovers if p.suffix == ".part"]


async def test_unread_counts_and_read_markers(server: Server) -> None:
    from .support import invite

    general = server.channel_id("general")
    reader = invite(server, server.token, "member")
    async with server.client() as owner, httpx.AsyncClient(base_url=server.url, headers=reader.auth) as member:

        def unread(channels: list[dict[str, Any]]) -> int:
            return int(next(c["unread_count"] for c in channels if c["id"] == general))

        assert unread((await member.get("/v1/channels")).json()["channels"]) == 0
        posted = [
            (await owner.post(f"/v1/channels/{general}/messages", json={"text": f"n{i}"})).json() for i in range(3)
        ]
        own = await member.post(f"/v1/channels/{general}/messages", json={"text": "mine"})
        assert own.status_code == 201
        assert unread((await member.get("/v1/channels")).json()["channels"]) == 3, "your own messages are not unread"
        marked = await member.post(f"/v1/channels/{general}/read", json={"seq": posted[1]["message"]["seq"]})
        assert marked.json()["last_read_seq"] == posted[1]["message"]["seq"]
        assert unread((await member.get("/v1/channels")).json()["channels"]) == 1
        back = await member.post(f"/v1/channels/{general}/read", json={"seq": 1})
        assert back.json()["last_read_seq"] == posted[1]["message"]["seq"], "markers only move forward"
        assert (await member.post(f"/v1/channels/{general}/read", json={"seq": -1})).status_code == 400


async def test_history_around_a_message_for_deep_links(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    async with shared_server.client() as client:
        root = (await client.post(f"/v1/channels/{general}/messages", json={"text": "r0"})).json()
        thread_id = root["thread"]["id"]
        replies = [
            (await client.post(f"/v1/threads/{thread_id}/messages", json={"text": f"r{i}"})).json()["message"]
            for i in range(1, 40)
        ]
        target = replies[19]  # r20
        page = (
            await client.get(f"/v1/threads/{thread_id}/history", params={"around": target["seq"], "limit": 10})
        ).json()
        texts = [m["text"] for m in page["messages"]]
        assert "r20" in texts and len(texts) == 10
        by_id = await client.get(f"/v1/threads/{thread_id}/history", params={"around": target["id"], "limit": 10})
        assert [m["id"] for m in by_id.json()["messages"]] == [m["id"] for m in page["messages"]]
        elsewhere = await client.get(f"/v1/threads/{thread_id}/history", params={"around": "msg_nope"})
        assert elsewhere.status_code == 404
        assert texts == [f"r{i}" for i in range(int(texts[0][1:]), int(texts[0][1:]) + 10)]
        assert page["cursors"]["before"] is not None and page["cursors"]["after"] is not None
        both = await client.get(f"/v1/threads/{thread_id}/history", params={"around": 1, "after": 2})
        assert both.status_code == 400


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Deploy **today**?\n```py\nprint(1)\n```", "Deploy today? print(1)"),
        ("<script>alert('XSS1')</script>", "<script>alert('XSS1')</script>"),
        ("# Heading\n> quoted *em* and snake_case_name", "Heading quoted em and snake_case_name"),
        ("- [x] item with [link](http://x) and `code`", "item with link and code"),
        ("2 * 3 * 4 and a>b", "2 * 3 * 4 and a>b"),
        ("x" * 100, "x" * 79 + "…"),
    ],
)
async def test_thread_titles_drop_markdown_marks_but_keep_literal_text(text: str, title: str) -> None:
    assert _title(text) == title
