"""A voice memo goes with its message when retention purges it: row, transcript, audio file and
the transcript's copies in the event log (docs/voice.md, docs/memory.md)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.memory import retention

from .support import Server, toml_config, wait_until
from .voice_support import Clip

pytestmark = pytest.mark.slow


def _text(body: Any) -> str:
    """An event's body as text: bytes from the SQLite file, text from Postgres."""
    return body if isinstance(body, str) else bytes(body).decode()


def _rows(server: Server) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        db = server.database()
        await db.open()
        try:
            return {
                "memos": {r[0]: r[1] for r in await db.fetchall("SELECT id, channel_id FROM voice_memos")},
                "events": [_text(r[0]) for r in await db.fetchall("SELECT body FROM events")],
            }
        finally:
            await db.close()

    return asyncio.run(read())


def _purge(server: Server) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        db = server.database()
        await db.open()
        try:
            now = datetime.now(UTC) + timedelta(days=2)
            return await retention.purge(db, server.data_dir, dry_run=False, now=now)
        finally:
            await db.close()

    return asyncio.run(run())


def test_a_purged_message_takes_its_voice_memo_with_it(tmp_path: Path, voice_model: Path, clip: Clip) -> None:
    server = Server(tmp_path / "data", toml_config()).start()
    memos = {}
    with server.sync_client() as client:
        for name, days in (("short", 1), ("long", 30)):
            channel = client.post("/v1/channels", json={"name": name}).json()["channel"]["id"]
            policy = client.put(f"/v1/memory/policies/channel/{channel}", json={"retention_days": days})
            assert policy.status_code == 200, policy.text
            posted = client.post(
                "/v1/voice/memos",
                data={"channel_id": channel},
                files={"file": ("m.ogg", clip.files["ogg"], "audio/ogg")},
            )
            assert posted.status_code == 201, posted.text
            memos[name] = posted.json()["memo"]
        for memo in memos.values():
            wait_until(
                lambda memo=memo: (
                    client.get(f"/v1/voice/memos/{memo['id']}/transcript").json()["transcript"]["status"]
                    == "transcribed"
                ),
                timeout=120,
            )
    server.stop()
    data_dir = server.data_dir
    files = {name: list((data_dir / "voice" / m["id"][-2:]).glob(f"{m['id']}.*")) for name, m in memos.items()}
    assert all(len(found) == 1 for found in files.values())
    before = _rows(server)
    assert sum("Tuesday" in e for e in before["events"]) >= 4  # both transcripts, in memo and message events

    done = _purge(server)
    after = _rows(server)
    assert done["voice_memos"] == 1 and done["files"] == 1
    assert set(after["memos"]) == {memos["long"]["id"]}
    assert not files["short"][0].exists() and files["long"][0].exists()
    short_events = [e for e in after["events"] if memos["short"]["id"] in e or memos["short"]["message_id"] in e]
    assert short_events and not any("Tuesday" in e for e in short_events), "no transcript left of the purged memo"
    assert any("Tuesday" in e for e in after["events"] if memos["long"]["id"] in e)
