"""How late the event loop runs what it was asked to: its lag, for `/metrics`.

Everything a gateway does, every request, fan-out and stream, runs on one event loop, so when
it is late everything is late. A timer asks to wake every `INTERVAL`; how much later than asked
it wakes is time the loop spent on work it could not put down (a fan-out to many streams, a slow
callback, a thread holding the GIL). The lags are kept as a histogram (Prometheus's cumulative
buckets): `spacechat_event_loop_lag_seconds`, docs/observability.md.
"""

from __future__ import annotations

import asyncio
import bisect

# Upper bounds of the buckets, in seconds (a sample lands in the first that holds it; +Inf last).
BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
INTERVAL = 0.1


class LoopLag:
    """The loop's lags since start: a count per bucket, their sum and the newest."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.latest = 0.0

    @property
    def samples(self) -> int:
        return sum(self.counts)

    def observe(self, lag: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self.sum += lag
        self.latest = lag

    def cumulative(self) -> list[tuple[str, float]]:
        """The buckets as Prometheus writes them: `le` and how many samples were at most that."""
        out, running = [], 0
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.observe(max(0.0, loop.time() - due))
