"""realtime/relay.py against a real nats-server and a real event log (issue 17).

Three relays stand for three gateways in one event loop. They share one log (the real store: a
SQLite file, or a Postgres database with `--store=postgres`) and one nats-server subprocess; the
batches committed to the log are handed to the relays in turn, as if each gateway had committed
every third batch. Each relay feeds a real `Bus`, which itself refuses an event out of seq order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.events import Event, MessageCreated, MessageStreamDelta
from spacechat_plugin.realtime.bus import Bus
from spacechat_plugin.realtime.relay import Relay
from spacechat_plugin.resources import resource
from spacechat_plugin.store import log as event_log
from spacechat_plugin.store.backend import database
from spacechat_plugin.store.db import Database, WriteTx

from .buses import NatsServer, available
from .support import STORAGE_URL, store_env

pytestmark = pytest.mark.skipif(not available(), reason="nats-server is not installed")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = store_env().get(STORAGE_URL, "")
    opened = database(url, tmp_path, migrations=resource("migrations"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


class Gateway:
    """A relay feeding a real Bus, recording every seq delivered and every live event."""

    def __init__(self, name: str, db: Database, url: str, **options: Any) -> None:
        self.name = name
        self.bus = Bus()
        self.seqs: list[int] = []
        self.live: list[Event] = []
        self.controls: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

        async def read_after(seq: int) -> list[bytes]:
            return [logged.body for logged in await event_log.read_after(db, seq)]

        self.relay = Relay(
            url=url,
            gateway_id=name,
            read_after=read_after,
            log_head=lambda: event_log.head(db),
            deliver=self._deliver,
            deliver_live=self._live,
            on_control=self._control,
            heartbeat_seconds=0.2,
            **options,
        )

    def _deliver(self, events: list[Event]) -> None:
        self.bus.publish(events)  # asserts seq order
        self.seqs.extend(event.seq for event in events if event.seq is not None)
        self.changed.set()

    def _live(self, event: Event) -> None:
        self.live.append(event)
        self.changed.set()

    def _control(self, kind: str, data: dict[str, Any]) -> None:
        self.controls.append((kind, data))
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 20) -> None:
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)


def message(n: int) -> Event:
    return Event(
        payload=MessageCreated(message={"id": f"msg_{n}", "text": f"message {n}", "thread_id": "thr_1"}),
        org_id="org_1",
        channel_id="chn_1",
        thread_id="thr_1",
    )


async def commit_through(db: Database, gateways: list[Gateway], count: int, batch: int = 3) -> None:
    """Commit `count` events in batches; each batch is "committed by" the next gateway in turn."""
    turn = itertools.cycle(gateways)
    numbers = iter(range(count))
    for _ in range(0, count, batch):
        chunk = list(itertools.islice(numbers, batch))

        def write(tx: WriteTx, chunk: list[int] = chunk) -> list[Event]:
            return [tx.emit(message(n)) for n in chunk]

        events = await db.write(write)
        next(turn).relay.committed(events)


async def started(db: Database, url: str, names: str = "abc", **options: Any) -> list[Gateway]:
    gateways = [Gateway(name, db, url, **options) for name in names]
    for gateway in gateways:
        await gateway.relay.start(after_seq=await event_log.head(db))
    async with asyncio.timeout(10):  # connecting sets no event of ours: look until they are
        while not all(gateway.relay.stats.connected for gateway in gateways):
            await asyncio.sleep(0.02)
    return gateways


async def stopped(gateways: list[Gateway]) -> None:
    for gateway in gateways:
        await gateway.relay.stop()


async def test_every_gateway_receives_every_commit_in_seq_order_once(db: Database, nats_server: NatsServer) -> None:
    gateways = await started(db, nats_server.url)
    try:
        await commit_through(db, gateways, 600)
        for gateway in gateways:
            await gateway.wait_for(lambda gateway=gateway: len(gateway.seqs) >= 600)
            assert gateway.seqs == list(range(1, 601)), gateway.name
        # The others' batches came over the bus, not from the log (the bus is the fast path).
        received = sum(gateway.relay.stats.received for gateway in gateways)
        assert received >= 600 * 2 * 0.9
    finally:
        await stopped(gateways)


async def test_a_gateway_that_cannot_reach_the_bus_delivers_from_the_log(db: Database) -> None:
    """No bus at all (nothing listens there): everything arrives all the same, from the log."""
    lonely = Gateway("lonely", db, "nats://127.0.0.1:1", poll_seconds=0.1)
    await lonely.relay.start(after_seq=0)
    try:
        writer = Gateway("writer", db, "nats://127.0.0.1:1")
        await commit_through(db, [writer], 30)
        await lonely.wait_for(lambda: len(lonely.seqs) >= 30)
        assert lonely.seqs == list(range(1, 31))
        assert lonely.relay.stats.filled == 30 and not lonely.relay.stats.connected
    finally:
        await lonely.relay.stop()


@pytest.mark.slow
async def test_the_bus_stopped_for_ten_seconds_during_a_burst_loses_and_repeats_nothing(
    db: Database, nats_server: NatsServer
) -> None:
    gateways = await started(db, nats_server.url, poll_seconds=0.5)
    try:
        burst = asyncio.create_task(burst_for(db, gateways, seconds=14))
        for gateway in gateways:  # the burst is flowing over the bus before the bus goes
            await gateway.wait_for(lambda gateway=gateway: gateway.relay.stats.received >= 20, timeout=10)
        nats_server.pause()
        await asyncio.sleep(10)
        nats_server.start()
        total = await burst
        for gateway in gateways:
            await gateway.wait_for(lambda gateway=gateway: len(gateway.seqs) >= total, timeout=30)
            assert gateway.seqs == list(range(1, total + 1)), gateway.name
            assert gateway.relay.stats.reconnects >= 1
        # While the bus was down, the log carried delivery.
        assert all(gateway.relay.stats.filled > 0 for gateway in gateways)
    finally:
        await stopped(gateways)


async def burst_for(db: Database, gateways: list[Gateway], seconds: float) -> int:
    """Commit a few batches every 10 ms for `seconds`; return how many events."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    total = 0
    while loop.time() < end:
        await commit_through(db, gateways, 6)
        total += 6
        await asyncio.sleep(0.01)
    return total


async def test_a_gap_the_bus_never_fills_is_read_from_the_log(db: Database, nats_server: NatsServer) -> None:
    """A batch whose bus message was lost (here: committed and never published) is delivered
    from the log once the next batch shows the gap, still in order."""
    gateways = await started(db, nats_server.url, names="ab")
    a, b = gateways
    try:

        def write(tx: WriteTx) -> list[Event]:
            return [tx.emit(message(n)) for n in range(5)]

        await db.write(write)  # committed, but nobody published it
        await commit_through(db, [a], 5)
        await b.wait_for(lambda: len(b.seqs) >= 10)
        assert b.seqs == list(range(1, 11))
        assert b.relay.stats.filled >= 5
        # A committed 6-10 and delivered them itself, after filling 1-5 from the log.
        await a.wait_for(lambda: len(a.seqs) >= 10)
        assert a.seqs == list(range(1, 11))
    finally:
        await stopped(gateways)


async def test_live_events_and_control_messages_reach_the_other_gateways(db: Database, nats_server: NatsServer) -> None:
    gateways = await started(db, nats_server.url, names="ab")
    a, b = gateways
    try:
        delta = Event(payload=MessageStreamDelta(message_id="msg_1", offset=0, text="Hel"), org_id="org_1")
        a.relay.live(delta)
        a.relay.control("login_succeeded", {"email": "ada@example.com"})
        await b.wait_for(lambda: b.live and b.controls)
        assert b.live[0].to_json() == delta.to_json()
        assert b.controls == [("login_succeeded", {"email": "ada@example.com"})]
        assert not a.live and not a.controls, "a gateway's own messages do not come back to it"
        # Each gateway is listed by the others' health from its heartbeats.
        await a.wait_for(lambda: "b" in a.relay.peers, timeout=5)
        assert a.relay.peers["b"]["id"] == "b" and "last_seen" in a.relay.peers["b"]
    finally:
        await stopped(gateways)


async def test_caught_up_waits_for_every_seq_up_to_the_head_reading_the_log_for_what_the_bus_lost(
    db: Database, nats_server: NatsServer
) -> None:
    """The read barrier (app.py `caught_up`): a request waits until its gateway has delivered
    what the log held when it arrived. Here the bus never brings the batch (committed elsewhere,
    never published): the relay reads it from the log after `gap_wait`, and only then answers."""
    (b,) = await started(db, nats_server.url, names="b", gap_wait=0.05)
    try:

        def write(tx: WriteTx) -> list[Event]:
            return [tx.emit(message(n)) for n in range(4)]

        await db.write(write)  # committed by "another gateway" that never published it
        head = await event_log.head(db)
        assert b.seqs == [] and b.relay.delivered < head
        assert await b.relay.caught_up(head, within=10)
        assert b.seqs == [1, 2, 3, 4], "answered only once everything up to the head was delivered"
        assert b.relay.stats.waited == 1 and b.relay.stats.filled == 4
        # Caught up already: no wait at all.
        assert await b.relay.caught_up(head, within=10) and b.relay.stats.waited == 1
    finally:
        await stopped([b])


async def test_caught_up_gives_up_after_its_timeout_when_the_log_does_not_have_the_seq(
    db: Database, nats_server: NatsServer
) -> None:
    """A head the log never reaches (a broken database, here a seq nobody commits): the request
    goes on after the timeout rather than hanging, and the wait is counted."""
    (b,) = await started(db, nats_server.url, names="b", gap_wait=0.01)
    try:
        assert not await b.relay.caught_up(b.relay.delivered + 5, within=0.2)
        assert b.relay.stats.waits_timed_out == 1
        assert b.relay._waiters == [], "a waiter that gave up is not kept"
    finally:
        await stopped([b])


async def test_synced_returns_after_every_other_gateway_has_answered_behind_what_it_sent(
    db: Database, nats_server: NatsServer
) -> None:
    """The barrier for what is not in the log (presence): each gateway answers a sync after the
    control messages it sent before it, so once `synced` returns they are all here."""
    gateways = await started(db, nats_server.url, names="abc")
    a, b, c = gateways
    try:
        await b.wait_for(lambda: {"a", "c"} <= set(b.relay.peers), timeout=5)
        a.relay.control("presence.sync", {"gateway": "a", "people": {"usr_1": ["org_1", "active"]}})
        c.relay.control("presence.sync", {"gateway": "c", "people": {"usr_2": ["org_1", "active"]}})
        assert await b.relay.synced(within=5)
        assert sorted(data["gateway"] for kind, data in b.controls if kind == "presence.sync") == ["a", "c"]
        # A gateway that stopped answering (still listed as alive for three heartbeats): the
        # sync gives up after its time, and says so.
        await a.relay.stop()
        assert not await b.relay.synced(within=0.2)
        # Not waited for again until heard from anew: the next sync is answered by c alone.
        assert "a" in {g["id"] for g in b.relay.gateways() if g["alive"]}, "still listed as alive"
        assert await b.relay.synced(within=5)
    finally:
        await stopped(gateways)
