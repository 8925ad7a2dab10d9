"""Retention and export (issue 12, point 6): the purge removes exactly what is due (rows, files,
vectors, the log's text) and nothing else, dry or not, from the CLI too; an export holds exactly
one person's data."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacechat_plugin.memory import retention

from .memory_support import POLL, candidates
from .support import Server, invite, toml_config, wait_until

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def _channel(client: httpx.Client, name: str, **policy: Any) -> str:
    channel_id = str(client.post("/v1/channels", json={"name": name}).json()["channel"]["id"])
    if policy:
        assert client.put(f"/v1/memory/policies/channel/{channel_id}", json=policy).status_code == 200
    return channel_id


def _post_with_file(client: httpx.Client, channel_id: str, text: str) -> dict[str, Any]:
    upload = client.post(
        "/v1/uploads", params={"filename": "a.png"}, content=PNG, headers={"Content-Type": "image/png"}
    )
    posted = client.post(
        f"/v1/channels/{channel_id}/messages", json={"text": text, "attachments": [upload.json()["attachment"]["id"]]}
    )
    assert posted.status_code == 201, posted.text
    return dict(posted.json()["message"])


def _memory_in(client: httpx.Client, channel_id: str) -> tuple[str, str]:
    """A poll vote in the channel becomes a candidate; approve it. Returns (memory, a pending one)."""
    ids = []
    for _ in range(2):
        card = client.post(f"/v1/channels/{channel_id}/messages", json={"text": "vote", "blocks": [POLL]}).json()
        client.post(
            "/v1/interactions",
            json={"message_id": card["message"]["id"], "action_id": "vote", "block_id": "drink", "values": ["tea"]},
        )
        ids.append(
            str(
                wait_until(
                    lambda card=card: next(
                        (c["id"] for c in candidates(client) if c["source_message_id"] == card["message"]["id"]), None
                    ),
                    timeout=20,
                )
            )
        )
    memory = client.post(f"/v1/memory/candidates/{ids[0]}/approve", json={}).json()["memory"]["id"]
    return memory, ids[1]


def _text(body: Any) -> str:
    """An event's body as text: bytes from the SQLite file, text from Postgres."""
    return body if isinstance(body, str) else bytes(body).decode()


def _counts(server: Server) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        db = server.database()
        await db.open()
        try:
            return {
                "messages": {r[0]: r[1] for r in await db.fetchall("SELECT id, channel_id FROM messages")},
                "attachments": {r[0] for r in await db.fetchall("SELECT id FROM attachments")},
                "vectors": {r[0] for r in await db.fetchall("SELECT ref_id FROM vector_refs")},
                "vec_rows": await db.scalar("SELECT COUNT(*) FROM vec_items"),
                "candidates": {r[0]: r[1] for r in await db.fetchall("SELECT id, channel_id FROM memory_candidates")},
                "memories": {r[0]: (r[1], r[2]) for r in await db.fetchall("SELECT id, status, content FROM memories")},
                "events": [_text(r[0]) for r in await db.fetchall("SELECT body FROM events")],
                "audit": [
                    dict(r)
                    for r in await db.fetchall("SELECT action, details FROM audit_log WHERE action = 'memory.purge'")
                ],
            }
        finally:
            await db.close()

    return asyncio.run(read())


def _tables_holding(server: Server, word: str) -> list[str]:
    """The tables (full-text index shadows and vectors aside) with a text cell holding `word`."""
    with server.raw_store() as store:
        if store.postgres:  # Postgres's full-text index is an index on the text, not a table
            columns = store.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
                " AND data_type IN ('text', 'character varying') AND table_name NOT LIKE 'vec\\_%'"
            )
            found = "position(? IN lower({column})) > 0"
        else:
            tables = [
                name
                for (name,) in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if "fts" not in name and not name.startswith(("vec_", "sqlite_"))
            ]
            columns = [(table, row[1]) for table in tables for row in store.execute(f"PRAGMA table_info({table})")]
            found = "typeof({column}) = 'text' AND instr(lower({column}), ?)"
        return [
            f"{table}.{column}"
            for table, column in columns
            if store.execute(f"SELECT 1 FROM {table} WHERE {found.format(column=column)} LIMIT 1", (word,))
        ]


def _purge(server: Server, *, dry_run: bool, days_ahead: float) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        db = server.database()
        await db.open()
        try:
            now = datetime.now(UTC) + timedelta(days=days_ahead)
            return await retention.purge(db, server.data_dir, dry_run=dry_run, now=now)
        finally:
            await db.close()

    return asyncio.run(run())


@pytest.mark.slow
def test_purge_removes_exactly_what_is_due(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config()).start()
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        short = _channel(client, "short", retention_days=1, sources=["interaction"])
        long = _channel(client, "long", retention_days=30, sources=["interaction"])
        due = _post_with_file(client, short, "the heron project is cancelled")
        # What people do to a message hangs on it and goes with it: an edit's history, a reaction,
        # a reply in its thread (the thread's preview), a mention.
        edited = client.patch(f"/v1/messages/{due['id']}", json={"text": "the heron project is cancelled, sadly"})
        assert edited.status_code == 200, edited.text
        reacted = client.post(f"/v1/messages/{due['id']}/reactions", json={"emoji": "👍"})
        assert reacted.status_code in (200, 201), reacted.text
        reply = client.post(f"/v1/threads/{due['thread_id']}/messages", json={"text": "heron follow-up @spacebot"})
        assert reply.status_code == 201, reply.text
        kept = _post_with_file(client, long, "the kestrel project is on track")
        due_memory, due_candidate = _memory_in(client, short)
        kept_memory, kept_candidate = _memory_in(client, long)
        wait_until(
            lambda: len(client.get("/v1/search", params={"q": "heron", "mode": "semantic"}).json()["results"]) > 0,
            timeout=30,
        )
        wait_until(
            lambda: len(client.get("/v1/search", params={"q": "kestrel", "mode": "semantic"}).json()["results"]) > 0,
            timeout=30,
        )
    server.stop()
    data_dir = server.data_dir
    before = _counts(server)
    files = {a: data_dir / "attachments" / a[-2:] / a for a in before["attachments"]}
    assert all(f.exists() for f in files.values())

    dry = _purge(server, dry_run=True, days_ahead=2)
    assert dry["dry_run"] and dry["messages"] >= 3 and dry["attachments"] == 1 and dry["memories"] == 1
    assert dry["candidates"] == 2
    after_dry = _counts(server)
    assert {k: v for k, v in after_dry.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}

    done = _purge(server, dry_run=False, days_ahead=2)
    after = _counts(server)
    gone = {m for m, channel in before["messages"].items() if channel == short}
    assert due["id"] in gone and set(after["messages"]) == set(before["messages"]) - gone
    assert kept["id"] in after["messages"]
    assert done["messages"] == len(gone) and done["files"] == 1
    (due_file,) = [a for a in before["attachments"] if a not in after["attachments"]]
    assert not files[due_file].exists() and all(f.exists() for a, f in files.items() if a != due_file)
    assert after["vectors"] == before["vectors"] - gone - {due_memory, due_candidate}
    assert after["vec_rows"] == len(after["vectors"])
    assert after["candidates"] == {c: ch for c, ch in before["candidates"].items() if ch != short}
    assert kept_candidate in after["candidates"] and due_candidate not in after["candidates"]
    assert after["memories"][due_memory] == ("deleted", "") and after["memories"][kept_memory][0] == "valid"
    assert not _tables_holding(server, "heron"), "no row keeps the text of a purged message"
    log = "\n".join(after["events"])
    assert "heron" not in log and "kestrel" in log, "the log keeps no text of purged rows"
    assert [json.loads(a["details"])["dry_run"] for a in after["audit"]] == [True, False]

    # Nothing more is due; the CLI says so, dry.
    cli = server.cli("purge", "--dry-run")
    assert cli.returncode == 0 and "would delete 0 messages" in cli.stdout, cli.stdout + cli.stderr
    server.start()
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        for mode in ("semantic", "hybrid"):
            texts = [
                r["text"]
                for r in client.get("/v1/search", params={"q": "heron project", "mode": mode}).json()["results"]
            ]
            assert not any("heron" in t for t in texts)
    server.stop()


@pytest.mark.slow
def test_export_holds_exactly_one_persons_data(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config()).start()
    ann, ben = (
        invite(server, server.token, "member", name="Ann Archer"),
        invite(server, server.token, "member", name="Ben Baker"),
    )
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as owner:
        channel = _channel(owner, "people", sources=["message"])
        for who, text in ((ann, "Ann's roadmap note"), (ben, "Ben's budget note")):
            with httpx.Client(base_url=server.url, headers=who.auth) as client:
                assert client.post(f"/v1/channels/{channel}/messages", json={"text": text}).status_code == 201
        pending = wait_until(
            lambda: (
                [c for c in candidates(owner) if c["channel_id"] == channel]
                if len([c for c in candidates(owner) if c["channel_id"] == channel]) == 2
                else None
            ),
            timeout=20,
        )
        for candidate in pending:
            assert owner.post(f"/v1/memory/candidates/{candidate['id']}/approve", json={}).status_code == 200
        with httpx.Client(base_url=server.url, headers=ann.auth) as client:
            assert client.put("/v1/me/memory/consent", json={"consent": "in"}).status_code == 200
            answer = client.get("/v1/me/export")
            assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
            refused = client.get(f"/v1/users/{ben.id}/export")
            assert refused.status_code == 403
        archive = zipfile.ZipFile(io.BytesIO(answer.content))
        assert set(archive.namelist()) == {
            "README.txt",
            "profile.json",
            "messages.json",
            "memories.json",
            "candidates.json",
            "audit.json",
        }
        data = {name: json.loads(archive.read(name)) for name in archive.namelist() if name.endswith(".json")}
        assert [m["text"] for m in data["messages.json"]] == ["Ann's roadmap note"]
        assert [m["content"] for m in data["memories.json"]] == ["Ann's roadmap note"]
        assert all(ann.id in (c["subject_id"], c["source_user_id"]) for c in data["candidates.json"])
        assert data["audit.json"] and all(
            ann.id in (row["actor"]["id"], row["target"]["id"]) for row in data["audit.json"]
        )
        assert data["profile.json"]["user"]["id"] == ann.id and data["profile.json"]["memory_consent"] == "in"
        assert "Ben" not in json.dumps(data)
        admin = owner.get(f"/v1/users/{ben.id}/export")
        assert admin.status_code == 200
        bens = json.loads(zipfile.ZipFile(io.BytesIO(admin.content)).read("messages.json"))
        assert [m["text"] for m in bens] == ["Ben's budget note"]
        audited = owner.get("/v1/audit", params={"action": "memory.export.admin"}).json()["entries"]
        assert [row["target"]["id"] for row in audited] == [ben.id]
    server.stop()
