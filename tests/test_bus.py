"""The bus: encode once, fan out by cursor, cut the laggard."""

from __future__ import annotations

import asyncio

import pytest

from spacechat_plugin.bus import Bus, Lagged
from spacechat_plugin.events import Event, SystemHealthChanged

pytestmark = pytest.mark.asyncio


def event(seq: int) -> Event:
    return Event(SystemHealthChanged(component=f"c{seq}", status="ok"), org_id="org_a", seq=seq)


async def test_every_subscriber_gets_every_visible_event_in_order() -> None:
    bus = Bus(ring_size=64, max_lag=32)
    everyone = bus.subscribe(lambda entry: True)
    nobody = bus.subscribe(lambda entry: False)
    bus.publish([event(1), event(2)])
    bus.publish([event(3)])
    got = await everyone.next()
    assert [entry.seq for entry in got] == [1, 2, 3]
    assert got[0].sse.startswith(b"id: 1\ndata: {")
    assert got[0].json is bus.entries_after(0)[0].json  # type: ignore[index]
    waiting = asyncio.create_task(nobody.next())
    await asyncio.sleep(0.01)
    assert not waiting.done(), "invisible events do not wake a subscriber with nothing to send"
    bus.tick()
    assert await waiting == []


async def test_a_subscriber_too_far_behind_is_cut() -> None:
    bus = Bus(ring_size=16, max_lag=5)
    slow = bus.subscribe(lambda entry: True)
    fast = bus.subscribe(lambda entry: True)
    for seq in range(1, 4):
        bus.publish([event(seq)])
        assert [e.seq for e in await fast.next()] == [seq]
    bus.publish([event(4), event(5)])
    assert not slow.lagged
    assert len(await fast.next()) == 2
    bus.publish([event(6)])
    assert slow.lagged and bus.lagged_total == 1
    with pytest.raises(Lagged):
        await slow.next()
    assert [e.seq for e in await fast.next()] == [6]


async def test_events_must_arrive_in_seq_order() -> None:
    bus = Bus(ring_size=16, max_lag=4)
    bus.publish([event(2)])
    with pytest.raises(AssertionError):
        bus.publish([event(1)])
    with pytest.raises(AssertionError):
        bus.publish(["not an event"])  # type: ignore[list-item]
