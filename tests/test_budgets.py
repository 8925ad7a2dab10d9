"""Budgets per person and per team over HTTP with a fake OpenAI-compatible model: a person's
spent budget pauses the agent for that person only; a team's for that team's channels only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fake_openai import FakeOpenAI, priced_agent_config
from .support import Person, Server, invite, wait_for_message

pytestmark = pytest.mark.asyncio

# Each turn of the fake model costs $0.000094 (see test_observability.py).
TURN_COST = (20 * 1.0 + 12 * 2.0 + 100 * 0.5) / 1_000_000


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


def say(server: Server, person: Person, text: str, channel: str = "spacebot") -> str:
    with httpx.Client(base_url=server.url, headers=person.auth) as client:
        posted = client.post(f"/v1/channels/{server.channel_id(channel)}/messages", json={"text": text})
        assert posted.status_code == 201, posted.text
        return str(posted.json()["thread"]["id"])


def answered(server: Server, thread_id: str) -> dict[str, Any]:
    return wait_for_message(
        server, thread_id, lambda m: m["author"]["kind"] in ("agent", "system") and m["state"] == "completed"
    )


async def test_a_persons_budget_pauses_the_agent_for_them_only(tmp_path: Path, model: FakeOpenAI) -> None:
    person = {"limit_usd": 1.5 * TURN_COST, "hard_stop": True, "warn_at": 0.5}
    server = Server(tmp_path / "data", priced_agent_config(model, budgets__person=person)).start()
    try:
        ada, bo = invite(server, server.token, "member"), invite(server, server.token, "member")
        for text in ("one", "two"):
            reply = await asyncio.to_thread(answered, server, say(server, ada, text))
            assert reply["author"]["kind"] == "agent"
        with server.sync_client() as client:
            usage = client.get("/v1/usage", params={"group_by": "user"}).json()["rows"]
            assert {r["user"]: r["requests"] for r in usage} == {ada.id: 2}
        before = len(model.requests)
        paused = await asyncio.to_thread(answered, server, say(server, ada, "three"))
        assert "is paused: your day budget" in paused["text"] and f"person:{ada.id}" in paused["text"]
        assert len(model.requests) == before, "no turn ran for Ada"
        other = await asyncio.to_thread(answered, server, say(server, bo, "hello"))
        assert other["author"]["kind"] == "agent", "Bo's own budget is untouched"
        with server.sync_client() as client:
            kinds = [i["kind"] for i in client.get("/v1/incidents").json()["incidents"]]
            assert kinds == ["budget_stop"]
    finally:
        server.stop()


async def test_a_teams_budget_covers_its_channels(tmp_path: Path, model: FakeOpenAI) -> None:
    team = f"\n[budgets.teams.General]\nlimit_usd = {0.5 * TURN_COST!r}\nhard_stop = true\n"
    server = Server(tmp_path / "data", priced_agent_config(model, team)).start()
    try:
        ada = invite(server, server.token, "member")
        first = await asyncio.to_thread(answered, server, say(server, ada, "one"))
        assert first["author"]["kind"] == "agent"
        paused = await asyncio.to_thread(answered, server, say(server, ada, "two"))
        assert "the team's day budget" in paused["text"]
        with server.sync_client() as client:
            status = client.get("/v1/usage", params={"group_by": "team"}).json()["rows"]
            assert len(status) == 1 and status[0]["cost_usd"] == pytest.approx(TURN_COST)
    finally:
        server.stop()
