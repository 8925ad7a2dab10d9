"""store/lease.py against a real Postgres (issue 17): one holder at a time; a SIGKILLed holder's
lease is taken by another process within seconds; a clean stop hands it over at once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from spacechat_plugin.store.lease import Lease

from .buses import PostgresServer

HOLDER = """
import asyncio, sys
from spacechat_plugin.store.lease import Lease

async def main():
    async def acquired():
        print("held", flush=True)
    async def lost():
        print("lost", flush=True)
    lease = Lease(sys.argv[1], "spacechat.agents", on_acquired=acquired, on_lost=lost, retry_seconds=0.2)
    lease.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    server = PostgresServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class Watched:
    """A lease in this process, with events for what happens to it."""

    def __init__(self, url: str) -> None:
        self.acquired = asyncio.Event()
        self.lost = asyncio.Event()
        self.lease = Lease(url, "spacechat.agents", on_acquired=self._acquired, on_lost=self._lost, retry_seconds=0.2)

    async def _acquired(self) -> None:
        self.acquired.set()

    async def _lost(self) -> None:
        self.lost.set()

    async def attempts(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.lease.attempts < count:
                await asyncio.sleep(0.05)


def holder(url: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


@pytest.mark.slow
async def test_a_killed_holders_lease_is_taken_by_another_process_within_seconds(database: str) -> None:
    other = holder(database)
    here = Watched(database)
    here.lease.start()
    try:
        await here.attempts(5)  # it asked five times while the other process held the lease
        assert not here.lease.held and not here.acquired.is_set()
        killed_at = time.monotonic()
        other.send_signal(signal.SIGKILL)
        other.wait(10)
        await asyncio.wait_for(here.acquired.wait(), 10)
        assert time.monotonic() - killed_at < 3
        assert here.lease.held and here.lease.acquired_times == 1
    finally:
        await here.lease.stop()
        if other.poll() is None:
            other.kill()
        other.wait(10)
        if other.stdout is not None:
            other.stdout.close()


async def test_a_clean_stop_hands_the_lease_over_at_once(database: str) -> None:
    first, second = Watched(database), Watched(database)
    first.lease.start()
    await asyncio.wait_for(first.acquired.wait(), 10)
    second.lease.start()
    try:
        await second.attempts(2)
        assert not second.lease.held
        await first.lease.stop()
        await asyncio.wait_for(second.acquired.wait(), 5)
        assert second.lease.held and not first.lease.held
    finally:
        await first.lease.stop()
        await second.lease.stop()


async def test_a_holder_whose_database_goes_away_says_it_lost_the_lease() -> None:
    server = PostgresServer()
    server.start()
    watched = Watched(server.url)
    watched.lease.start()
    try:
        await asyncio.wait_for(watched.acquired.wait(), 10)
        server.pause()  # Postgres gone: the lock may be anyone's once it is back
        await asyncio.wait_for(watched.lost.wait(), 10)
        assert not watched.lease.held
        server.start()
        watched.acquired.clear()
        await asyncio.wait_for(watched.acquired.wait(), 15)  # and it competes again
        assert watched.lease.held and watched.lease.acquired_times == 2
    finally:
        await watched.lease.stop()
        server.stop()


async def test_the_lease_session_has_the_server_give_up_on_a_lost_holder_within_seconds(database: str) -> None:
    """Postgres ends a session (and so the lock) when its socket is found dead, and finds that
    out by its own TCP keepalives: the kernel's defaults wait two hours, so a holder whose
    machine or network is gone would keep the agents stopped that long. The lease's session
    sets them (5 s idle, then 5 probes 1 s apart; 10 s for unacknowledged data)."""
    watched = Watched(database)
    watched.lease.start()
    try:
        await asyncio.wait_for(watched.acquired.wait(), 10)
        names = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout")
        cursor = await watched.lease._conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s) ORDER BY name", (list(names),)
        )
        assert dict(await cursor.fetchall()) == {
            "tcp_keepalives_count": "5",
            "tcp_keepalives_idle": "5",
            "tcp_keepalives_interval": "1",
            "tcp_user_timeout": "10000",
        }
    finally:
        await watched.lease.stop()
