"""The event loop's lag (operations/loop_lag.py): a loop held by work it cannot put down shows
in `/metrics` as a late timer, in the bucket its delay falls in."""

from __future__ import annotations

import asyncio
import time

from spacechat_plugin.operations.loop_lag import LoopLag


class Watched(LoopLag):
    """A LoopLag that says when it took a sample."""

    def __init__(self) -> None:
        super().__init__(interval=0.01)
        self.sampled = asyncio.Event()

    def observe(self, lag: float) -> None:
        super().observe(lag)
        self.sampled.set()

    async def next_sample(self) -> None:
        await self.sampled.wait()
        self.sampled.clear()


async def test_a_loop_held_for_300_ms_is_seen_late_by_about_that_much() -> None:
    lag = Watched()
    sampler = asyncio.create_task(lag.run())
    try:
        async with asyncio.timeout(10):
            for _ in range(3):  # it runs, with no work in the way: small lags
                await lag.next_sample()
        lag.sampled.clear()
        time.sleep(0.3)  # noqa: ASYNC251 - on purpose: the loop held, nothing else runs meanwhile
        async with asyncio.timeout(10):
            await lag.next_sample()
        assert 0.25 <= lag.latest < 0.5
        buckets = dict(lag.cumulative())
        assert buckets["0.25"] < buckets["0.5"] and buckets["+Inf"] == lag.samples
        assert lag.sum >= 0.25
    finally:
        sampler.cancel()
