"""Connections: 10,000 idle SSE and 1,000 WebSocket subscribers on one server, and fan-out to all.

Issue 16's figure: an idle realtime connection costs <= 12 KiB of server RSS, and one server
holds 10,000 SSE plus 1,000 WebSocket connections with fan-out to all of them measured.

Each run starts a fresh `spacechat serve` (CPU 0; the open-files limit is raised to the hard
limit first, and the server inherits it), warms it with 20 posts, reads its VmRSS, connects the
SSE subscribers (spread over `--client-procs` processes on CPU 1, each stream waited for until
`ready`), lets them settle and reads VmRSS again, then the same for the WebSocket subscribers.
Per connection: (after - before) / connections, for each kind. Then `--messages` replies are
posted one at a time, `--gap-ms` apart, each carrying a unique marker, and every subscriber notes
when it first sees it: post -> first and post -> last (all N), and the server's CPU per delivery.

    python bench/connections.py                          # 10,000 SSE + 1,000 WebSocket, ~3 min
    python bench/connections.py --small                  # 500 + 50: a quick check that it works
    python bench/connections.py --sse 5000 --ws 0 --messages 50
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from clients import SubscriberPool
from harness import (
    CpuMonitor,
    HTTPConnection,
    Server,
    add_client_options,
    add_server_options,
    begin,
    bench_config,
    describe_clients,
    general_channel,
    log,
    median,
    new_thread,
    percentile,
    print_table,
    run_async,
    wait_for_idle,
)

TARGET_KIB = 12.0
PADDING = " the quick brown fox jumps over the lazy dog" * 2


@dataclass
class Result:
    sse: int
    ws: int
    rss_base_mib: float = 0.0
    rss_all_mib: float = 0.0
    sse_kib: float = 0.0
    ws_kib: float = 0.0
    post_to_last_ms: list[float] = field(default_factory=list)
    post_to_first_ms: list[float] = field(default_factory=list)
    missed: int = 0
    server_us_per_delivery: float = 0.0
    foreign_cpu: float = 0.0

    def summary(self) -> dict[str, float]:
        return {
            "rss_base_mib": self.rss_base_mib,
            "rss_all_mib": self.rss_all_mib,
            "sse_kib": self.sse_kib,
            "ws_kib": self.ws_kib,
            "p50": percentile(self.post_to_last_ms, 50),
            "p99": percentile(self.post_to_last_ms, 99),
            "first_p50": percentile(self.post_to_first_ms, 50),
            "missed": float(self.missed),
            "server_us": self.server_us_per_delivery,
            "foreign_cpu": self.foreign_cpu,
        }


async def measure(server: Server, args: argparse.Namespace) -> Result:
    host, port, token = server.host, server.port, server.token
    result = Result(args.sse, args.ws)
    conn = await HTTPConnection.open(host, port, token)
    thread_id, _ = await new_thread(conn, await general_channel(conn))
    path = f"/v1/threads/{thread_id}/messages"
    for i in range(20):
        await conn.json("POST", path, {"text": f"warm-up {i}"}, expect=201)
    conn.close()
    await asyncio.sleep(1.0)
    before = server.rss_kib()
    result.rss_base_mib = before / 1024
    prefix = f"conn-{secrets.token_hex(4)}-"
    pool = SubscriberPool(max(1, args.client_procs), host, port, token, prefix.encode())
    try:
        started = time.perf_counter()
        if args.sse:
            await pool.open(sse=args.sse)
            await asyncio.sleep(args.settle)
            after_sse = server.rss_kib()
            result.sse_kib = (after_sse - before) / args.sse
            log(f"{args.sse:,} SSE connected in {time.perf_counter() - started:.0f} s: {result.sse_kib:.1f} KiB each")
            before = after_sse
        if args.ws:
            started = time.perf_counter()
            await pool.open(sse=0, ws=args.ws)
            await asyncio.sleep(args.settle)
            after_ws = server.rss_kib()
            result.ws_kib = (after_ws - before) / args.ws
            elapsed = time.perf_counter() - started
            log(f"{args.ws:,} WebSocket connected in {elapsed:.0f} s: {result.ws_kib:.1f} KiB each")
        result.rss_all_mib = server.rss_kib() / 1024
        total = args.sse + args.ws
        conn = await HTTPConnection.open(host, port, token)
        with CpuMonitor(server) as monitor:
            cpu_before = server.cpu_seconds()
            for i in range(args.messages):
                seen = pool.seen(i)
                await conn.request("POST", path, {"text": f"{prefix}{i:06d}{PADDING}"})
                posted = conn.sent_at
                try:
                    first, last = await asyncio.wait_for(asyncio.shield(seen), 30.0)
                except TimeoutError:
                    missed = pool.missed_upper(i)
                    result.missed += missed
                    pool.forget(i)
                    log(f"message {i}: missed by at most {missed} subscribers in 30 s")
                    continue
                pool.forget(i)
                result.post_to_last_ms.append((last - posted) * 1000)
                result.post_to_first_ms.append((first - posted) * 1000)
                await asyncio.sleep(args.gap_ms / 1000)
            result.server_us_per_delivery = (server.cpu_seconds() - cpu_before) / (args.messages * total) * 1e6
        result.foreign_cpu = monitor.foreign
        conn.close()
    finally:
        await pool.close()
    return result


def one_run(args: argparse.Namespace) -> Result:
    wait_for_idle()
    with Server(bench_config(), src=args.src) as server:
        return run_async(measure(server, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sse", type=int, default=10_000, help="idle SSE subscribers (default 10000)")
    parser.add_argument("--ws", type=int, default=1_000, help="WebSocket subscribers (default 1000)")
    parser.add_argument("--messages", type=int, default=20, help="messages fanned out to all (default 20)")
    parser.add_argument("--gap-ms", type=float, default=200, help="pause between messages (default 200)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS (default 3)")
    parser.add_argument("--runs", type=int, default=1)
    add_client_options(parser, default_procs=4)
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    if args.small:
        args.sse, args.ws, args.messages, args.runs = 500, 50, 5, 1

    begin("connections", args)
    runs = []
    for run in range(args.runs):
        summary = one_run(args).summary()
        runs.append(summary)
        log(
            f"run {run + 1}: SSE {summary['sse_kib']:.1f} KiB/conn, WebSocket {summary['ws_kib']:.1f} KiB/conn, "
            f"server RSS {summary['rss_all_mib']:.0f} MiB, post->last p50 {summary['p50']:.0f} ms "
            f"p99 {summary['p99']:.0f} ms, missed {summary['missed']:.0f}, "
            f"other processes {summary['foreign_cpu']:.0%} CPU"
        )
    if not runs:
        return

    def med(key: str) -> float:
        return median([summary[key] for summary in runs])

    print_table(
        f"{args.sse:,} idle SSE + {args.ws:,} WebSocket connections to one server, {args.messages} messages fanned "
        f"out to all: medians of {args.runs} run(s); client: {describe_clients(args)}",
        [
            "server RSS before / with all (MiB)",
            "RSS per idle SSE conn (KiB)",
            "RSS per WebSocket conn (KiB)",
            "post->first p50 (ms)",
            "post->last p50 / p99 (ms)",
            "server CPU per delivery (µs)",
            "missed (at most)",
        ],
        [
            [
                f"{med('rss_base_mib'):.0f} / {med('rss_all_mib'):.0f}",
                f"{med('sse_kib'):.1f}",
                f"{med('ws_kib'):.1f}",
                f"{med('first_p50'):.1f}",
                f"{med('p50'):.0f} / {med('p99'):.0f}",
                f"{med('server_us'):.1f}",
                f"{sum(summary['missed'] for summary in runs):.0f}",
            ]
        ],
    )
    kib = med("sse_kib")
    verdict = "met" if kib <= TARGET_KIB else f"MISSED ({kib / TARGET_KIB:.1f}x the target)"
    print(f"\ntarget: an idle SSE connection <= {TARGET_KIB:.0f} KiB of server RSS: {kib:.1f} KiB, {verdict}")
    if args.json:
        args.json.write_bytes(orjson.dumps(runs, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
