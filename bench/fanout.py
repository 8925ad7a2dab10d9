"""Fan-out: one message posted to N connected SSE subscribers on loopback.

For each N (default 100, 500, 1000) and each run, a fresh `spacechat serve` (CPU 0) gets N raw SSE
subscribers from this process (CPU 1), then messages are posted one at a time as replies in one
thread (one `message.created` event each). Every subscriber looks for the message's unique text in
the bytes it receives; the time of the LAST subscriber's receipt is compared with:

- post -> last:  when the POST was written to the socket (so it includes request handling, the group
  commit with its fsync, and the fan-out): the headline figure, an upper bound on commit -> last;
- post -> first: from the POST to the first subscriber's receipt: request handling and the commit;
- first -> last: the spread between the first and the last subscriber's receipt (the fan-out alone);
- ack -> last:   when the POST's 201 arrived. The server publishes to the bus before it answers the
  caller and the subscribers' writes are scheduled first, so this is usually <= 0 and is shown only
  to make that visible.

Also reported: the server's RSS per idle connection ((VmRSS after connecting N and letting it settle
- VmRSS before) / N) and the server's CPU time per delivery (CPU seconds over the message loop /
(messages * N)). Medians over the runs are printed as a Markdown table.

With `--typists K --present P` (issue 13) people are also live while it runs: K bot identities
type in ten threads of the channel (a report that they type, then that they stopped, every few
seconds each) and P invited people with open streams switch between active and away every few
seconds (activity.py). The first half of the measured messages runs with them quiet, the second
half with them busy, in the same server: the report adds post->last p99 quiet and busy, and
their ratio (the target: busy p99 within 10 % of quiet).

    python bench/fanout.py                       # N = 100, 500, 1000; 100 messages each; 3 runs
    python bench/fanout.py --profile /tmp/fanout.txt   # plus one unrecorded run under py-spy
    python bench/fanout.py --subscribers 1000 --typists 100 --present 50   # presence and typing
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from activity import Activity
from clients import SubscriberPool
from harness import (
    CpuMonitor,
    HTTPConnection,
    Server,
    SSEStream,
    add_client_options,
    add_profile_options,
    add_server_options,
    begin,
    bench_config,
    client_cpu_seconds,
    describe_clients,
    general_channel,
    log,
    maybe_profile,
    median,
    new_thread,
    open_many,
    percentile,
    print_table,
    repeat_if_disturbed,
    run_async,
    wait_for_idle,
    with_range,
)

PADDING = " the quick brown fox jumps over the lazy dog" * 2  # a message of ~110 characters
TARGET_P99_MS = 100.0


@dataclass
class Probe:
    """What the subscribers are looking for right now, and when they found it."""

    marker: bytes = b"\0never"
    generation: int = 0
    remaining: int = 0
    first: float = 0.0
    last: float = 0.0
    done: asyncio.Future[None] | None = None

    def arm(self, marker: bytes, subscribers: int) -> None:
        self.marker = marker
        self.generation += 1
        self.remaining = subscribers
        self.first = self.last = 0.0
        self.done = asyncio.get_running_loop().create_future()


class FanoutStream(SSEStream):
    """A subscriber that notes the time it first sees the probe's marker."""

    def __init__(self, *args: Any, probe: Probe, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probe = probe
        self.seen = 0

    def chunk(self, data: bytes, now: float) -> None:
        probe = self.probe
        if self.seen != probe.generation and probe.marker in self._tail + data:
            self.seen = probe.generation
            if not probe.first:
                probe.first = now
            probe.last = now
            probe.remaining -= 1
            if probe.remaining == 0 and probe.done is not None and not probe.done.done():
                probe.done.set_result(None)


@dataclass
class Result:
    subscribers: int
    post_to_last_ms: list[float] = field(default_factory=list)
    first_to_last_ms: list[float] = field(default_factory=list)
    post_to_first_ms: list[float] = field(default_factory=list)
    ack_to_last_ms: list[float] = field(default_factory=list)
    post_to_ack_ms: list[float] = field(default_factory=list)
    missed: int = 0
    busy_ms: list[float] = field(default_factory=list)  # post -> last while people type and come and go
    busy_first_ms: list[float] = field(default_factory=list)  # post -> first, busy
    busy_spread_ms: list[float] = field(default_factory=list)  # first -> last, busy
    reports: int = 0
    rss_per_conn_kib: float = 0.0
    server_us_per_delivery: float = 0.0
    server_sys_share: float = 0.0
    client_us_per_delivery: float = 0.0
    foreign_cpu: float = 0.0

    def summary(self) -> dict[str, float]:
        return {
            "p50": percentile(self.post_to_last_ms, 50),
            "p99": percentile(self.post_to_last_ms, 99),
            "spread_p50": percentile(self.first_to_last_ms, 50),
            "spread_p99": percentile(self.first_to_last_ms, 99),
            "post_to_first_p50": percentile(self.post_to_first_ms, 50),
            "post_to_first_p99": percentile(self.post_to_first_ms, 99),
            "ack_to_last_p50": percentile(self.ack_to_last_ms, 50),
            "post_to_ack_p50": percentile(self.post_to_ack_ms, 50),
            "rss_kib": self.rss_per_conn_kib,
            "server_us": self.server_us_per_delivery,
            "server_sys": self.server_sys_share,
            "client_us": self.client_us_per_delivery,
            "missed": float(self.missed),
            "foreign_cpu": self.foreign_cpu,
            "busy_p99": percentile(self.busy_ms, 99) if self.busy_ms else 0.0,
            "busy_p50": percentile(self.busy_ms, 50) if self.busy_ms else 0.0,
            "busy_post_to_first_p99": percentile(self.busy_first_ms, 99) if self.busy_first_ms else 0.0,
            "busy_spread_p99": percentile(self.busy_spread_ms, 99) if self.busy_spread_ms else 0.0,
            "reports": float(self.reports),
        }


async def measure(server: Server, subscribers: int, args: argparse.Namespace, profile: Path | None) -> Result:
    messages, gap, warmup = args.messages, args.gap_ms / 1000, args.warmup
    block = max(1, args.block or messages // 2)
    host, port, token = server.host, server.port, server.token
    conn = await HTTPConnection.open(host, port, token)
    channel_id = await general_channel(conn)
    thread_id, _ = await new_thread(conn, channel_id)
    path = f"/v1/threads/{thread_id}/messages"
    for i in range(20):  # warm the server's code paths before the baseline RSS
        await conn.json("POST", path, {"text": f"warm-up {i}"}, expect=201)
    conn.close()  # idle through the connecting below, uvicorn would close it (keep-alive timeout 5 s)
    await asyncio.sleep(1.0)
    rss_before = server.rss_kib()

    activity = None
    if args.typists or args.present:
        activity = Activity(host, port, token, typists=args.typists, present=args.present)
        await activity.start(channel_id)
        log(f"N={subscribers}: {args.typists} typists and {args.present} people present, quiet for now")
    probe = Probe()
    nonce = secrets.token_hex(4)
    prefix = f"fanout-{nonce}-"
    pool: SubscriberPool | None = None
    streams: list[FanoutStream] = []
    if args.client_procs:
        pool = SubscriberPool(args.client_procs, host, port, token, prefix.encode())
        await pool.open(sse=subscribers)
    else:
        streams = await open_many(lambda: FanoutStream.open(host, port, token, probe=probe), subscribers)
    await asyncio.sleep(2.0)  # let the connections settle before reading RSS
    result = Result(subscribers)
    result.rss_per_conn_kib = (server.rss_kib() - rss_before) / subscribers
    log(f"N={subscribers}: connected, {result.rss_per_conn_kib:.1f} KiB RSS per connection")
    conn = await HTTPConnection.open(host, port, token)

    split, cpu_client = (0.0, 0.0), 0.0
    profiling = maybe_profile(server, profile, gil=args.profile_gil)
    try:
        with profiling, CpuMonitor(server) as monitor:
            for i in range(warmup + messages):
                if i == warmup:
                    split, cpu_client = server.cpu_split(), client_cpu_seconds()
                # Quiet and busy alternate in blocks (quiet first), so that whatever drifts over
                # a run (the ring filling, the heap growing) weighs on both alike.
                busy = activity is not None and i >= warmup and ((i - warmup) // block) % 2 == 1
                if activity is not None and busy != activity.on.is_set():
                    if busy:
                        activity.on.set()
                        await asyncio.sleep(3.0)  # the typists and people get going
                    else:
                        activity.on.clear()
                        # Each typist finishes its report pair; the server's typing lapses.
                        await asyncio.sleep(3.0)
                marker = f"{prefix}{i:06d}"
                probe.arm(marker.encode(), subscribers)
                assert probe.done is not None
                seen = probe.done if pool is None else pool.seen(i)
                status, body = await conn.request("POST", path, {"text": marker + PADDING})
                acked = time.perf_counter()
                if status != 201:
                    raise RuntimeError(f"POST failed: {status} {body[:200]!r}")
                try:
                    await asyncio.wait_for(asyncio.shield(seen), 10.0)
                except TimeoutError:
                    missed = probe.remaining if pool is None else pool.missed_upper(i)
                    result.missed += missed
                    if pool is not None:
                        pool.forget(i)
                    log(f"N={subscribers}: message {i} missed by {missed} subscribers (at most) in 10 s")
                    continue
                if pool is not None:
                    probe.first, probe.last = pool.seen(i).result()
                    pool.forget(i)
                if busy:
                    result.busy_ms.append((probe.last - conn.sent_at) * 1000)
                    result.busy_first_ms.append((probe.first - conn.sent_at) * 1000)
                    result.busy_spread_ms.append((probe.last - probe.first) * 1000)
                elif i >= warmup:
                    result.post_to_last_ms.append((probe.last - conn.sent_at) * 1000)
                    result.first_to_last_ms.append((probe.last - probe.first) * 1000)
                    result.post_to_first_ms.append((probe.first - conn.sent_at) * 1000)
                    result.ack_to_last_ms.append((probe.last - acked) * 1000)
                    result.post_to_ack_ms.append((acked - conn.sent_at) * 1000)
                await asyncio.sleep(gap)
            deliveries = messages * subscribers
            user, system = (now - before for now, before in zip(server.cpu_split(), split, strict=True))
            result.server_us_per_delivery = (user + system) / deliveries * 1e6
            result.server_sys_share = system / max(user + system, 1e-9)
            result.client_us_per_delivery = (client_cpu_seconds() - cpu_client) / deliveries * 1e6
        result.foreign_cpu = monitor.foreign
    finally:
        if activity is not None:
            result.reports = activity.reports
            await activity.stop()
        for stream in streams:
            stream.close()
        if pool is not None:
            await pool.close()
        conn.close()
    return result


def one_run(subscribers: int, args: argparse.Namespace, profile: Path | None = None) -> Result:
    wait_for_idle()
    with Server(bench_config(), src=args.src) as server:
        return run_async(measure(server, subscribers, args, profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", default="100,500,1000", help="comma-separated N (default 100,500,1000)")
    parser.add_argument("--messages", type=int, default=100, help="measured messages per N and run (default 100)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured messages first (default 5)")
    parser.add_argument("--gap-ms", type=float, default=20, help="pause between messages (default 20)")
    parser.add_argument("--runs", type=int, default=3)
    add_client_options(parser)
    parser.add_argument("--typists", type=int, default=0, help="bots typing in the busy blocks (issue 13)")
    parser.add_argument("--present", type=int, default=0, help="people coming and going, busy blocks only")
    parser.add_argument(
        "--block",
        type=int,
        default=50,
        help="with typists or people: measured messages per quiet or busy block, alternating (default 50)",
    )
    add_profile_options(parser, "one more run of the largest N (not counted)")
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    counts = [int(n) for n in args.subscribers.split(",")]

    if args.small:
        counts, args.messages, args.runs = [min(counts[0], 100)], 20, 1
    begin("fanout", args)
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
    for run in range(args.runs):
        for n in counts:

            def measured(n: int = n) -> dict[str, float]:
                return one_run(n, args).summary()

            summary = repeat_if_disturbed(measured, lambda s: s["foreign_cpu"])
            runs[n].append(summary)
            log(
                f"run {run + 1} N={n}: post->last p50 {summary['p50']:.1f} ms p99 {summary['p99']:.1f} ms, "
                f"first->last p50 {summary['spread_p50']:.1f} ms, {summary['rss_kib']:.1f} KiB/conn, "
                f"server {summary['server_us']:.1f} µs/delivery, missed {summary['missed']:.0f}, "
                f"other processes {summary['foreign_cpu']:.0%} CPU"
            )

    if args.runs:
        report(args, counts, runs)
    if args.json:
        args.json.write_bytes(orjson.dumps({str(n): runs[n] for n in counts}, option=orjson.OPT_INDENT_2))
    if args.profile:
        log(f"profiling one more run of N={max(counts)} (not counted)")
        one_run(max(counts), args, profile=args.profile)


def report(args: argparse.Namespace, counts: list[int], runs: dict[int, list[dict[str, float]]]) -> None:
    def med(n: int, key: str) -> float:
        return median([summary[key] for summary in runs[n]])

    def spread(n: int, key: str) -> str:
        return with_range([summary[key] for summary in runs[n]])

    print_table(
        f"Fan-out, one message to N SSE subscribers: medians (and range) of {args.runs} runs x {args.messages} "
        f"messages each; client: {describe_clients(args)}",
        [
            "N",
            "post->last p50 (ms)",
            "post->last p99 (ms)",
            "post->first p50 / p99 (ms)",
            "first->last p50 / p99 (ms)",
            "ack->last p50 (ms)",
            "post->ack p50 (ms)",
            "RSS per idle conn (KiB)",
            "server CPU per delivery (µs)",
            "of which kernel",
            "client CPU per delivery (µs)",
            "missed",
        ],
        [
            [
                f"{n:,}",
                spread(n, "p50"),
                spread(n, "p99"),
                f"{med(n, 'post_to_first_p50'):.1f} / {med(n, 'post_to_first_p99'):.1f}",
                f"{med(n, 'spread_p50'):.1f} / {med(n, 'spread_p99'):.1f}",
                f"{med(n, 'ack_to_last_p50'):.1f}",
                f"{med(n, 'post_to_ack_p50'):.1f}",
                f"{med(n, 'rss_kib'):.1f}",
                spread(n, "server_us"),
                f"{med(n, 'server_sys'):.0%}",
                f"{med(n, 'client_us'):.1f}",
                f"{sum(summary['missed'] for summary in runs[n]):.0f}",
            ]
            for n in counts
        ],
    )
    if runs.get(1000):
        p99 = med(1000, "p99")
        verdict = "met" if p99 <= TARGET_P99_MS else f"MISSED by {p99 - TARGET_P99_MS:.1f} ms"
        print(f"\ntarget: fan-out to 1,000 subscribers p99 <= {TARGET_P99_MS:.0f} ms: {p99:.1f} ms, {verdict}")
    if args.typists or args.present:
        print_table(
            f"With {args.typists} typists and {args.present} people coming and going (busy blocks of "
            f"{args.block} messages alternating with quiet ones; medians and range of the runs)",
            [
                "N",
                "p50 quiet / busy (ms)",
                "p99 quiet (ms)",
                "p99 busy (ms)",
                "busy / quiet p99",
                "post->first p99 quiet / busy",
                "first->last p99 quiet / busy",
                "reports sent",
            ],
            [
                [
                    f"{n:,}",
                    f"{med(n, 'p50'):.1f} / {med(n, 'busy_p50'):.1f}",
                    spread(n, "p99"),
                    spread(n, "busy_p99"),
                    with_range([s["busy_p99"] / max(s["p99"], 1e-9) for s in runs[n]], digits=2),
                    f"{med(n, 'post_to_first_p99'):.1f} / {med(n, 'busy_post_to_first_p99'):.1f}",
                    f"{med(n, 'spread_p99'):.1f} / {med(n, 'busy_spread_p99'):.1f}",
                    f"{med(n, 'reports'):.0f}",
                ]
                for n in counts
            ],
        )


if __name__ == "__main__":
    main()
