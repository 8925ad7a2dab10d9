"""`spacechat serve --workers 2` (issue 16): two worker processes on one port and one SQLite file.

Each worker is reached on the shared port (the kernel picks one per connection) or on its own
loopback socket (health's `gateways[].url`), which is how these tests pick one. The guarantees
of one process hold across them: a subscriber on one worker gets what is posted on the other
in seq order, each event once; a worker killed with SIGKILL is started again and its client
resumes on any worker with no gap and no duplicate; a concurrent duplicate sent to both makes
one message; the agents run in one worker and move when it dies; and the workers die with
their supervisor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacechat_plugin.workers import STABLE_AFTER, next_restart

from .support import OWNER, Server, invite, toml_config, wait_for_message
from .test_gateways import (
    Reader,
    agents_move_when_their_process_dies,
    assert_in_seq_order_once,
    health,
    lease_holders,
    new_thread,
    post_burst,
)
from .test_interactions import interact

pytestmark = pytest.mark.asyncio

FAST_LEASE = {"gateway": {"heartbeat_seconds": 0.5, "lease_retry_seconds": 0.5}}


def start(root: Path, **sections: Any) -> Server:
    return Server(root / "data", toml_config(top="workers = 2\n", **{**FAST_LEASE, **sections})).start()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    server = start(tmp_path, runtime={"mode": "none"})
    yield server
    server.stop()


def worker_pids(server: Server) -> dict[int, int]:
    """Worker index -> pid, read from the supervisor's children's command lines."""
    assert server.process is not None
    found: dict[int, int] = {}
    supervisor = server.process.pid
    for task in os.listdir(f"/proc/{supervisor}/task"):
        with open(f"/proc/{supervisor}/task/{task}/children") as handle:
            for child in handle.read().split():
                try:
                    argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"--worker" in argv:
                    found[int(argv[argv.index(b"--worker") + 1].split(b":")[0])] = int(child)
    return found


async def workers_up(server: Server, count: int = 2) -> dict[str, Server]:
    """Gateway id -> the same server seen through that worker's own socket, once `count` workers
    are alive in health's view."""
    async with asyncio.timeout(20):
        while True:
            gateways = [g for g in (await asyncio.to_thread(health, server))["gateways"] if g["alive"]]
            if len(gateways) >= count:
                return {g["id"]: dataclasses.replace(server, url=g["url"]) for g in gateways}
            await asyncio.sleep(0.1)


def index_of(gateway_id: str) -> int:
    return int(gateway_id.rsplit("-w", 1)[1])


async def test_a_subscriber_on_one_worker_gets_what_is_posted_on_the_other_in_seq_order(served: Server) -> None:
    first, second = (await workers_up(served)).values()
    thread_id = await new_thread(served)
    reader = Reader(first).start()
    await asyncio.wait_for(reader.ready.wait(), 15)
    on_second = [f"w-two-{i}" for i in range(60)]
    on_port = [f"w-port-{i}" for i in range(60)]  # the shared port: either worker
    await asyncio.gather(post_burst(second, thread_id, on_second), post_burst(served, thread_id, on_port))
    await reader.wait_for("w-", 120)
    await reader.stop()
    assert sorted(reader.texts("w-")) == sorted(on_second + on_port)
    assert_in_seq_order_once(reader.events)
    # One scrape of the shared port shows both workers' own series.
    async with served.client() as client:
        metrics = (await client.get("/metrics")).text
    for gateway_id in (g["id"] for g in (await asyncio.to_thread(health, served))["gateways"]):
        assert f'spacechat_realtime_subscribers{{gateway="{gateway_id}"}}' in metrics


@pytest.mark.slow
async def test_a_worker_killed_during_a_burst_is_started_again_and_its_subscriber_resumes_with_no_gap(
    served: Server,
) -> None:
    workers = await workers_up(served)
    (victim_id, victim), (other_id, other) = workers.items()
    pid = worker_pids(served)[index_of(victim_id)]
    thread_id = await new_thread(served)
    reader = Reader(victim).start()
    await asyncio.wait_for(reader.ready.wait(), 15)
    texts = [f"burst-{i}" for i in range(300)]
    burst = asyncio.create_task(post_burst(other, thread_id, texts, concurrency=2))
    await reader.wait_for("burst-", 40)
    os.kill(pid, signal.SIGKILL)  # mid-burst
    await reader.stop()
    before = list(reader.events)
    resumed = Reader(served, after=before[-1]["seq"]).start()  # Last-Event-ID, on the shared port
    acked = await burst
    assert len(acked) == 300
    await resumed.wait_for("burst-", 300 - len(reader.texts("burst-")))
    await resumed.stop()
    assert_in_seq_order_once(before + resumed.events)
    assert sorted([*reader.texts("burst-"), *resumed.texts("burst-")]) == sorted(texts), "a gap or a duplicate"
    # The supervisor started the killed worker again.
    async with asyncio.timeout(30):
        while (restarted := worker_pids(served).get(index_of(victim_id))) in (None, pid):
            await asyncio.sleep(0.1)
    again = await workers_up(served)
    async with again[victim_id].client() as client:
        assert (await client.get(f"/v1/threads/{thread_id}/history")).status_code == 200
    assert restarted != pid and other_id in again


async def test_a_concurrent_duplicate_sent_to_both_workers_makes_one_message(served: Server) -> None:
    first, second = (await workers_up(served)).values()
    thread_id = await new_thread(served)
    statuses: list[int] = []
    async with first.client() as to_first, second.client() as to_second:
        for i in range(20):
            key, body = f"dup-{i}", {"text": f"duplicate {i}"}
            answers = await asyncio.gather(
                to_first.post(f"/v1/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": key}),
                to_second.post(f"/v1/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": key}),
            )
            created = [r for r in answers if r.status_code == 201 and r.headers.get("idempotent-replayed") != "true"]
            assert len(created) == 1, [r.text for r in answers]
            other = next(r for r in answers if r is not created[0])
            assert other.status_code in (201, 409), other.text
            if other.status_code == 201:  # a replay of the same message
                assert other.json()["message"]["id"] == created[0].json()["message"]["id"]
            statuses += [r.status_code for r in answers]
        history = (await to_second.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
    texts = [m["text"] for m in history if m["text"].startswith("duplicate ")]
    assert sorted(texts) == sorted(f"duplicate {i}" for i in range(20)), "one message per key"


async def test_a_write_answered_by_one_worker_is_seen_by_the_next_request_on_the_other(served: Server) -> None:
    """Read-your-writes across workers: a member added to or removed from a private channel on
    one worker is let in, or refused, by the other worker's very next request. Each worker keeps
    memberships in memory, learnt from the others' commits over the hub; the read barrier has a
    request wait until its worker has caught up with the log (app.py `caught_up`)."""
    first, second = (await workers_up(served)).values()
    member = invite(served, served.token, "member")
    async with first.client() as owner:
        made = await owner.post("/v1/channels", json={"name": "rw-" + secrets.token_hex(4), "private": True})
        channel_id = made.json()["channel"]["id"]
        async with httpx.AsyncClient(base_url=second.url, headers=member.auth, timeout=30) as reader:
            for round_ in range(40):
                added = await owner.post(f"/v1/channels/{channel_id}/members", json={"user_id": member.id})
                assert added.status_code in (200, 201), added.text
                seen = await reader.get(f"/v1/channels/{channel_id}")
                assert seen.status_code == 200, f"round {round_}: added on one worker, refused on the other"
                removed = await owner.delete(f"/v1/channels/{channel_id}/members/{member.id}")
                assert removed.status_code in (200, 204), removed.text
                seen = await reader.get(f"/v1/channels/{channel_id}")
                assert seen.status_code == 404, f"round {round_}: removed on one worker, still let in on the other"


async def test_a_session_signed_out_on_one_worker_is_refused_by_the_next_request_on_the_other(
    served: Server,
) -> None:
    """Each worker caches credentials for a few seconds. A sign-out on one marks the shared file
    (Database `credentials_revoked`), so the other's next request reads the session afresh and
    refuses it, without waiting for the hub's message."""
    first, second = (await workers_up(served)).values()
    async with first.client() as on_first, second.client() as on_second:
        for round_ in range(15):
            signed_in = await on_first.post(
                "/v1/auth/login", json={"email": OWNER["email"], "password": OWNER["password"], "return_token": True}
            )
            assert signed_in.status_code == 200, signed_in.text
            bearer = {"Authorization": f"Bearer {signed_in.json()['session_token']}"}
            assert (await on_second.get("/v1/me", headers=bearer)).status_code == 200  # cached there now
            assert (await on_first.post("/v1/auth/logout", headers=bearer)).status_code == 204
            refused = await on_second.get("/v1/me", headers=bearer)
            assert refused.status_code == 401, f"round {round_}: signed out on one worker, let in on the other"


@pytest.mark.slow
async def test_the_worker_running_the_agents_killed_mid_reply_another_takes_over_and_the_next_turn_runs_once(
    tmp_path: Path,
) -> None:
    server = start(tmp_path, **{"providers.scripted": {"chars_per_second": 60}})
    try:
        workers = await workers_up(server)
        async with asyncio.timeout(15):
            while len(holders := await asyncio.to_thread(lease_holders, server)) != 1:
                await asyncio.sleep(0.1)
        holder = holders[0]
        # Watched through the survivor: a connection the dead worker held is gone.
        survivor = next(view for gateway_id, view in workers.items() if gateway_id != holder)
        pid = worker_pids(server)[index_of(holder)]
        await agents_move_when_their_process_dies(survivor, lambda: os.kill(pid, signal.SIGKILL), holder)
    finally:
        server.stop()


async def test_a_card_clicked_through_the_worker_without_the_agents_reaches_the_agent_once(tmp_path: Path) -> None:
    """The click goes to the worker running the agents (api/forward.py); its answer comes back
    whole, the replay header of a repeated click included."""
    server = start(tmp_path)
    try:
        workers = await workers_up(server)
        async with asyncio.timeout(15):
            while len(holders := await asyncio.to_thread(lease_holders, server)) != 1:
                await asyncio.sleep(0.1)
        other = next(view for gateway_id, view in workers.items() if gateway_id != holders[0])
        spacebot = server.channel_id("spacebot")

        def clicks() -> tuple[httpx.Response, httpx.Response, str, str]:
            with httpx.Client(base_url=other.url, headers=other.auth, timeout=30) as client:
                asked = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "show me an approval card"})
                thread_id = asked.json()["thread"]["id"]
                card = wait_for_message(
                    other,
                    thread_id,
                    lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed" and m["blocks"],
                )
                first = interact(client, card["id"], "approve", key="click-1")
                again = interact(client, card["id"], "approve", key="click-1")
                return first, again, thread_id, card["id"]

        first, again, thread_id, card_id = await asyncio.to_thread(clicks)
        assert first.status_code == 201 and first.headers.get("idempotent-replayed") is None
        assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
        reply = await asyncio.to_thread(
            wait_for_message,
            other,
            thread_id,
            lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed" and m["id"] != card_id,
        )
        assert reply["metadata"]["in_reply_to"] == [card_id]
        await asyncio.sleep(1)  # a second, wrong, turn would have started by now
        async with other.client() as client:
            history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
        assert len([m for m in history if m["author"]["kind"] == "agent"]) == 2, "the card and one reply"
    finally:
        server.stop()


async def test_workers_die_with_their_supervisor_and_the_data_is_whole(tmp_path: Path) -> None:
    server = start(tmp_path, runtime={"mode": "none"})
    await workers_up(server)
    thread_id = await new_thread(server)
    acked = await post_burst(server, thread_id, [f"kept-{i}" for i in range(30)])
    pids = list(worker_pids(server).values())
    assert len(pids) == 2
    server.kill()  # SIGKILL to the supervisor only
    async with asyncio.timeout(10):
        while any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in pids):
            await asyncio.sleep(0.05)
    server.url = ""
    server.start()  # the data directory is free again
    try:
        async with server.client() as client:
            history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
        assert sorted(m["text"] for m in history if m["text"].startswith("kept-")) == sorted(acked)
    finally:
        server.stop()


def _alive(pid: int) -> bool:
    """Not gone and not a zombie waiting for its (dead) parent's reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_workers_on_postgres_or_with_a_bus_are_refused_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('workers = 2\n\n[storage]\nurl = "postgresql://nobody@127.0.0.1/none"\n')
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "spacechat_plugin", "serve", "--config", str(config), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "workers" in done.stderr and "several gateways" in done.stderr, done.stderr


async def test_a_worker_that_keeps_dying_waits_longer_and_one_that_served_a_while_starts_again_at_once() -> None:
    """The supervisor's waits before starting a dead worker again: 0.2, 1 and then 5 s while it
    keeps dying at start; after a minute of serving, a death is a first one again (before, the
    wait never went back down, so a worker that crashed three times in a week waited 5 s)."""
    deaths, waits = 0, []
    for served in (0.5, 0.5, 0.5, 0.5):  # dies right after starting, four times
        wait, deaths = next_restart(deaths, served)
        waits.append(wait)
    assert waits == [0.2, 1.0, 5.0, 5.0]
    wait, deaths = next_restart(deaths, STABLE_AFTER + 1)  # then served for a while
    assert (wait, deaths) == (0.2, 1)
    assert next_restart(deaths, 2.0) == (1.0, 2)
