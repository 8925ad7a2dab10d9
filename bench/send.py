"""Send: latency and sustained throughput of `POST .../messages` while subscribers are connected.

Each run starts a fresh `spacechat serve` (CPU 0), connects 200 raw SSE subscribers that read
everything (CPU 1, this process), then 50 senders, each on its own keep-alive connection, post
back to back (closed loop) for a warm-up and then a measured window (default 15 s):

- send latency: from writing a request to the socket to reading its 201, for requests started in
  the window (p50, p99);
- messages/s persisted: 201s received in the window / window length (a 201 means committed with
  the configured `storage.synchronous`, `full` by default); cross-checked against the event log's
  seq at the end;
- server and client CPU use over the window (a server at ~100% of its core is the bottleneck);
- drain: after the last 201, how long until every subscriber has received the newest event, and
  whether any subscriber was cut with `lagged`;
- events per SSE write: how many events the server put in each write to a subscriber (about the
  events of one group commit, when the subscribers keep up).

By default messages are top-level posts to `general` (`POST /v1/channels/{id}/messages`, each opens
a thread: 2 events); `--target thread` posts replies into one thread per sender (1 event each).
`realtime.max_lag` and `ring_size` are raised so a slow subscriber is measured, not cut.

Closed loop measures the most the server can take, and its latency is the queueing at that
saturation (Little's law: 50 senders / rate). `--rate R` measures latency below saturation
instead: an open loop where the 50 senders together offer R messages/s on a fixed schedule (each
sender one request every 50/R s, staggered). Latency counts from the *scheduled* time, so a
request delayed behind a slow one is charged for its wait (no coordinated omission).

    python bench/send.py
    python bench/send.py --target thread --duration 10
    python bench/send.py --rate 500                # latency at an offered 500 msg/s
    python bench/send.py --profile /tmp/send.txt   # plus one unrecorded run under py-spy
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from clients import MarkerSSE, SubscriberPool, Tracker
from harness import (
    CpuMonitor,
    HTTPConnection,
    LoopLagSampler,
    Server,
    add_client_options,
    add_profile_options,
    add_server_options,
    begin,
    bench_config,
    client_cpu_seconds,
    describe_clients,
    general_channel,
    lag_percentile_ms,
    last_seq,
    log,
    maybe_profile,
    median,
    new_thread,
    open_many,
    percentile,
    print_table,
    repeat_if_disturbed,
    run_async,
    server_loop_lag,
    wait_for_idle,
    with_range,
)

TEXT = "a chat message of a realistic length, about a hundred characters, sent by the benchmark: "
TARGET_P50_MS, TARGET_P99_MS, TARGET_RATE = 10.0, 40.0, 2000.0


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    acked_in_window: int = 0
    acked_total: int = 0
    errors: int = 0
    window: float = 0.0
    events_logged: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    drain_ms: float = 0.0
    lagged: int = 0
    events_per_write: float = 0.0
    foreign_cpu: float = 0.0
    client_lag_p99: float = 0.0
    server_lag_p99: float = 0.0

    def summary(self) -> dict[str, float]:
        return {
            "p50": percentile(self.latencies_ms, 50),
            "p99": percentile(self.latencies_ms, 99),
            "rate": self.acked_in_window / self.window,
            "events_per_message": self.events_logged / max(self.acked_total, 1),
            "errors": float(self.errors),
            "events_logged": float(self.events_logged),
            "server_cpu": self.server_cpu,
            "client_cpu": self.client_cpu,
            "drain_ms": self.drain_ms,
            "lagged": float(self.lagged),
            "events_per_write": self.events_per_write,
            "foreign_cpu": self.foreign_cpu,
            "client_lag_p99": self.client_lag_p99,
            "server_lag_p99": self.server_lag_p99,
        }


async def measure(server: Server, args: argparse.Namespace, profile: Path | None) -> Result:
    host, port, token = server.host, server.port, server.token
    setup = await HTTPConnection.open(host, port, token)
    channel_id = await general_channel(setup)
    paths = [f"/v1/channels/{channel_id}/messages"] * args.senders
    if args.target == "thread":
        paths = [f"/v1/threads/{(await new_thread(setup, channel_id))[0]}/messages" for _ in range(args.senders)]
    setup.close()

    streams: list[MarkerSSE] = []
    pool: SubscriberPool | None = None
    if args.client_procs:
        pool = SubscriberPool(args.client_procs, host, port, token, b"")
        await pool.open(sse=args.subscribers)
    else:
        tracker = Tracker(b"", lambda report: None)
        streams = await open_many(lambda: MarkerSSE.open(host, port, token, tracker=tracker), args.subscribers)
    senders = [await HTTPConnection.open(host, port, token) for _ in range(args.senders)]
    await asyncio.sleep(1.0)
    log(f"{args.subscribers} subscribers ({describe_clients(args)}) and {len(senders)} senders connected")

    async def readers() -> tuple[int | None, int, int, int]:
        """As SubscriberPool.status: lowest newest id of those not cut, cut, events, writes."""
        if pool is not None:
            return await pool.status()
        alive = [stream.last_id for stream in streams if not stream.lagged]
        return (
            min(alive) if alive else None,
            sum(stream.lagged for stream in streams),
            sum(stream.events for stream in streams),
            sum(stream.writes for stream in streams),
        )

    result = Result()
    loop = asyncio.get_running_loop()
    start = loop.time() + args.warmup
    end = start + args.duration
    last_ack = 0.0

    interval = args.senders / args.rate if args.rate else 0.0

    async def sender(index: int, conn: HTTPConnection) -> None:
        nonlocal last_ack
        path, sent = paths[index], 0
        scheduled = loop.time() + interval * index / args.senders
        while (now := loop.time()) < end:
            if interval:
                if scheduled > now:
                    await asyncio.sleep(scheduled - now)
                now, scheduled = scheduled, scheduled + interval
                if now >= end:
                    break
            sent += 1
            status, _ = await conn.request("POST", path, {"text": f"{TEXT}{index}-{sent}"})
            done = loop.time()
            if status != 201:
                result.errors += 1
                continue
            last_ack = time.perf_counter()
            result.acked_total += 1
            if now >= start:
                result.latencies_ms.append((done - now) * 1000)
            if start <= done < end:
                result.acked_in_window += 1

    sampler = LoopLagSampler()
    lag_task = asyncio.ensure_future(sampler.run(start, end))

    async def window_cpu() -> tuple[float, float, float, float]:
        await asyncio.sleep(max(0.0, start - loop.time()))
        server0, client0 = server.cpu_seconds(), client_cpu_seconds()
        lags0 = await server_loop_lag(host, port, token)
        await asyncio.sleep(max(0.0, end - loop.time()))
        server1, client1 = server.cpu_seconds(), client_cpu_seconds()
        result.server_lag_p99 = lag_percentile_ms(lags0, await server_loop_lag(host, port, token), 99)
        return server0, client0, server1, client1

    profiling = maybe_profile(server, profile, gil=args.profile_gil)
    with profiling, CpuMonitor(server) as monitor:
        seq_before = await last_seq(host, port, token)
        cpu_task = asyncio.ensure_future(window_cpu())
        await asyncio.gather(*(sender(i, conn) for i, conn in enumerate(senders)))
        server0, client0, server1, client1 = await cpu_task
        await lag_task
    result.client_lag_p99 = percentile(sampler.lags_ms, 99)
    result.foreign_cpu = monitor.foreign
    result.window = args.duration
    result.server_cpu = (server1 - server0) / args.duration
    result.client_cpu = (client1 - client0) / args.duration

    newest = await last_seq(host, port, token)
    result.events_logged = newest - seq_before
    while (status := await readers())[0] is not None and status[0] < newest:
        if time.perf_counter() - last_ack > 60:
            log("subscribers did not catch up in 60 s")
            break
        await asyncio.sleep(0.005)
    result.drain_ms = (time.perf_counter() - last_ack) * 1000
    _, result.lagged, events, writes = await readers()
    result.events_per_write = events / max(1, writes)
    for stream in streams:
        stream.close()
    for connection in senders:
        connection.close()
    if pool is not None:
        await pool.close()
    return result


def one_run(args: argparse.Namespace, profile: Path | None = None) -> dict[str, float]:
    wait_for_idle()
    config = bench_config(max_lag=args.ring_size, ring_size=args.ring_size)
    with Server(config, src=args.src) as server:
        return run_async(measure(server, args, profile)).summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--duration", type=float, default=15, help="measured seconds per run (default 15)")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds of load first (default 2)")
    parser.add_argument("--target", choices=["channel", "thread"], default="channel")
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="open loop: messages/s offered by all senders together (default: closed loop)",
    )
    parser.add_argument("--ring-size", type=int, default=200_000, help="realtime ring_size = max_lag (default 200000)")
    parser.add_argument("--runs", type=int, default=3)
    add_client_options(parser)
    add_profile_options(parser, "one more run (not counted)")
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()

    if args.small:
        args.subscribers, args.senders, args.duration, args.warmup, args.runs = 50, 10, 3, 1, 1
    begin("send", args)
    runs = []
    for run in range(args.runs):
        summary = repeat_if_disturbed(lambda: one_run(args), lambda s: s["foreign_cpu"])
        runs.append(summary)
        log(
            f"run {run + 1}: p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms, {summary['rate']:.0f} msg/s, "
            f"server CPU {summary['server_cpu']:.0%}, client CPU {summary['client_cpu']:.0%}, "
            f"drain {summary['drain_ms']:.0f} ms, lagged {summary['lagged']:.0f}, errors {summary['errors']:.0f}, "
            f"loop lag p99: senders' {summary['client_lag_p99']:.1f} ms, "
            f"server's <= {summary['server_lag_p99']:.0f} ms, "
            f"other processes {summary['foreign_cpu']:.0%} CPU"
        )

    if runs:
        report(args, runs)
    if args.json:
        args.json.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))
    if args.profile:
        log("profiling one more run (not counted)")
        one_run(args, profile=args.profile)


def report(args: argparse.Namespace, runs: list[dict[str, float]]) -> None:
    def med(key: str) -> float:
        return median([summary[key] for summary in runs])

    def spread(key: str, digits: int = 1) -> str:
        return with_range([summary[key] for summary in runs], digits)

    print_table(
        f"Send with {args.subscribers} subscribers reading, {args.senders} concurrent senders, target {args.target}, "
        + (f"open loop at {args.rate:,.0f} msg/s offered" if args.rate else "closed loop")
        + ": "
        f"medians (and range) of {args.runs} runs x {args.duration:.0f} s; client: {describe_clients(args)}",
        [
            "send p50 (ms)",
            "send p99 (ms)",
            "messages/s persisted",
            "events logged per message",
            "server CPU",
            "client CPU",
            "drain after last ack (ms)",
            "events per SSE write",
            "loop lag p99: senders' / server's (ms)",
            "lagged",
            "errors",
        ],
        [
            [
                spread("p50"),
                spread("p99"),
                spread("rate", 0),
                f"{med('events_per_message'):.2f}",
                f"{med('server_cpu'):.0%}",
                f"{med('client_cpu'):.0%}",
                f"{med('drain_ms'):.0f}",
                f"{med('events_per_write'):.1f}",
                f"{med('client_lag_p99'):.1f} / <= {med('server_lag_p99'):.0f}",
                f"{sum(summary['lagged'] for summary in runs):.0f}",
                f"{sum(summary['errors'] for summary in runs):.0f}",
            ]
        ],
    )
    if (args.subscribers, args.senders) != (200, 50):
        print("note: the targets below are for 200 subscribers and 50 senders")
    targets = [
        ("send p50", med("p50"), TARGET_P50_MS, "ms", False),
        ("send p99", med("p99"), TARGET_P99_MS, "ms", False),
    ]
    if not args.rate:
        targets.append(("messages/s", med("rate"), TARGET_RATE, "msg/s", True))
    for name, value, target, unit, higher in targets:
        met = value >= target if higher else value <= target
        verdict = "met" if met else f"MISSED by {abs(value - target):,.1f} {unit} ({value / target:.1f}x the target)"
        print(f"target: {name} {'>=' if higher else '<='} {target:,.0f} {unit}: {value:,.1f} {unit}, {verdict}")


if __name__ == "__main__":
    main()
