"""Several gateways (issue 17): fan-out across gateways against one process, throughput with three
gateways, and many subscribers spread over client processes. Real servers throughout: Postgres
and nats-server started here, each gateway a `spacechat serve` on them (pinned to the server CPU
like every benchmark's server; the clients run on the other).

1. Fan-out: N subscribers (default 1,000) on gateway A, messages posted on gateway B, post ->
   last subscriber's receipt; beside it the same on one process on SQLite (the default mode).
   Target: p99 across gateways <= 2x the single process's.
2. Throughput: senders spread over three gateways for `--seconds`, messages/s acknowledged, and
   each gateway's CPU per message (to size a deployment).
3. Many subscribers: `--clients` processes each hold their share of `--many` SSE streams spread
   over the three gateways; messages posted on one; post -> last receipt over all processes.

    python bench/gateways.py            # N=1,000; 3 gateways; 50,000 subscribers over 10 processes
    python bench/gateways.py --small    # N=200; 1,500 subscribers over 3 processes: a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fanout import PADDING, FanoutStream, Probe  # noqa: E402
from harness import (  # noqa: E402
    HTTPConnection,
    Server,
    bench_config,
    general_channel,
    machine_description,
    new_thread,
    open_many,
    percentile,
    print_table,
    raise_fd_limit,
    run_async,
    wait_for_idle,
)

from tests.buses import NatsServer, PostgresServer  # noqa: E402


def gateway_config(database: str, bus: str, gateway_id: str) -> str:
    return bench_config(
        extra=f'\n[storage]\nurl = "{database}"\n\n[bus]\nurl = "{bus}"\n\n[gateway]\nid = "{gateway_id}"\n'
    )


class Deployment:
    """Postgres, NATS and `count` gateways on them."""

    def __init__(self, count: int) -> None:
        self.postgres, self.nats = PostgresServer(), NatsServer()
        self.count = count
        self.gateways: list[Server] = []

    def __enter__(self) -> Deployment:
        self.postgres.start()
        self.nats.start()
        for index in range(self.count):
            gateway = Server(gateway_config(self.postgres.url, self.nats.url, f"gw{index}"))
            if self.gateways:
                gateway.token = self.gateways[0].token  # the owner made on the first one
            self.gateways.append(gateway.start())
        return self

    def __exit__(self, *exc: object) -> None:
        for gateway in self.gateways:
            gateway.stop()
        self.nats.stop()
        self.postgres.stop()


async def fanout(post_on: Server, subscribe_on: list[Server], subscribers: int, messages: int) -> list[float]:
    """Post -> last receipt (ms) of `messages` posts on `post_on`, with `subscribers` streams spread
    over `subscribe_on`."""
    conn = await HTTPConnection.open(post_on.host, post_on.port, post_on.token)
    thread_id, _ = await new_thread(conn, await general_channel(conn))
    path = f"/v1/threads/{thread_id}/messages"
    probe = Probe()
    counter = iter(range(subscribers))

    def one() -> Any:
        server = subscribe_on[next(counter) % len(subscribe_on)]
        return FanoutStream.open(server.host, server.port, server.token, probe=probe)

    streams = await open_many(one, subscribers)
    await asyncio.sleep(2.0)
    nonce, latencies = secrets.token_hex(4), []
    try:
        for i in range(messages + 5):
            marker = f"gw-{nonce}-{i:06d}"
            probe.arm(marker.encode(), subscribers)
            assert probe.done is not None
            status, body = await conn.request("POST", path, {"text": marker + PADDING})
            if status != 201:
                raise RuntimeError(f"POST failed: {status} {body[:200]!r}")
            await asyncio.wait_for(asyncio.shield(probe.done), 30.0)
            if i >= 5:  # the first few warm the code paths
                latencies.append((probe.last - conn.sent_at) * 1000)
            await asyncio.sleep(0.02)
    finally:
        for stream in streams:
            stream.close()
        conn.close()
    return latencies


async def throughput(gateways: list[Server], seconds: float, senders: int) -> tuple[int, float]:
    """Messages acknowledged over `seconds` by `senders` connections spread over the gateways."""
    first = gateways[0]
    conn = await HTTPConnection.open(first.host, first.port, first.token)
    thread_id, _ = await new_thread(conn, await general_channel(conn))
    conn.close()
    path = f"/v1/threads/{thread_id}/messages"
    conns = [
        await HTTPConnection.open(g.host, g.port, g.token)
        for g in (gateways[i % len(gateways)] for i in range(senders))
    ]
    end = time.perf_counter() + seconds
    acked = 0

    async def sender(conn: HTTPConnection) -> None:
        nonlocal acked
        while time.perf_counter() < end:
            status, _ = await conn.request("POST", path, {"text": "x" * 200})
            if status == 201:
                acked += 1

    start = time.perf_counter()
    await asyncio.gather(*(sender(c) for c in conns))
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return acked, elapsed


def many(deployment: Deployment, total: int, clients: int, messages: int) -> list[float]:
    """`total` streams over `clients` processes; post -> last receipt over all of them (ms)."""
    targets = [{"host": g.host, "port": g.port, "token": g.token} for g in deployment.gateways]
    share = total // clients
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--role", "client", "--streams", str(share), "--targets", json.dumps(targets)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    poster = deployment.gateways[0]

    async def post_all() -> list[float]:
        conn = await HTTPConnection.open(poster.host, poster.port, poster.token)
        thread_id, _ = await new_thread(conn, await general_channel(conn))
        out = []
        for i in range(messages):
            marker = f"many-{secrets.token_hex(4)}-{i}"
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(marker + "\n")
                proc.stdin.flush()
            for proc in procs:  # each says "armed" once its probe is set
                assert proc.stdout is not None and proc.stdout.readline().strip() == "armed"
            sent = time.monotonic()
            await conn.request("POST", f"/v1/threads/{thread_id}/messages", {"text": marker + PADDING})
            lasts = []
            for proc in procs:
                assert proc.stdout is not None
                lasts.append(float(await asyncio.to_thread(proc.stdout.readline)))
            out.append((max(lasts) - sent) * 1000)
        conn.close()
        return out

    try:
        return run_async(post_all())
    finally:
        for proc in procs:
            proc.kill()


async def client(streams: int, targets: list[dict[str, Any]]) -> None:
    """One client process: hold `streams` SSE streams; for each marker read on stdin, say when
    (time.monotonic) the last of them received it."""
    raise_fd_limit()
    probe = Probe()
    counter = iter(range(streams))

    def one() -> Any:
        target = targets[next(counter) % len(targets)]
        return FanoutStream.open(target["host"], target["port"], target["token"], probe=probe)

    await open_many(one, streams, timeout=600)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while marker := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        probe.arm(marker.encode(), streams)
        print("armed", flush=True)
        assert probe.done is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(probe.done), 60)
        # perf_counter and monotonic are one clock on Linux (CLOCK_MONOTONIC), shared by processes.
        print(probe.last, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--senders", type=int, default=30)
    parser.add_argument("--many", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--role", default="run", choices=["run", "client"], help=argparse.SUPPRESS)
    parser.add_argument("--streams", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--targets", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        asyncio.run(client(args.streams, json.loads(args.targets)))
        return
    if args.small:
        args.subscribers, args.messages, args.seconds, args.many, args.clients = 200, 30, 5, 1500, 3
    raise_fd_limit()
    print(f"gateways: {machine_description()}; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)

    wait_for_idle()
    with Server(bench_config()) as single:
        alone = run_async(fanout(single, [single], args.subscribers, args.messages))
    wait_for_idle()
    with Deployment(3) as deployment:
        a, b = deployment.gateways[0], deployment.gateways[1]
        across = run_async(fanout(b, [a], args.subscribers, args.messages))
        wait_for_idle()
        cpu_before = [g.cpu_seconds() for g in deployment.gateways]
        acked, elapsed = run_async(throughput(deployment.gateways, args.seconds, args.senders))
        cpu = [g.cpu_seconds() - before for g, before in zip(deployment.gateways, cpu_before, strict=True)]
        wait_for_idle()
        spread = many(deployment, args.many, args.clients, min(args.messages, 20))
    p99_alone, p99_across = percentile(alone, 99), percentile(across, 99)
    print_table(
        f"Fan-out to {args.subscribers:,} subscribers, post -> last receipt ({args.messages} messages)",
        ["where", "p50 ms", "p99 ms", "p99 / one process"],
        [
            ["one process (SQLite)", f"{percentile(alone, 50):.1f}", f"{p99_alone:.1f}", "1.00"],
            [
                "posted on B, subscribers on A",
                f"{percentile(across, 50):.1f}",
                f"{p99_across:.1f}",
                f"{p99_across / p99_alone:.2f} (target <= 2)",
            ],
        ],
    )
    print_table(
        f"Throughput with 3 gateways: {args.senders} senders for {args.seconds:g} s",
        ["messages/s", "CPU ms per message, each gateway", "CPU ms per message, all gateways"],
        [
            [
                f"{acked / elapsed:,.0f}",
                ", ".join(f"{c / max(acked, 1) * 1000:.2f}" for c in cpu),
                f"{sum(cpu) / max(acked, 1) * 1000:.2f}",
            ]
        ],
    )
    print_table(
        f"{args.many:,} subscribers over {args.clients} client processes and 3 gateways",
        ["messages", "p50 ms", "p99 ms", "max ms"],
        [[len(spread), f"{percentile(spread, 50):.0f}", f"{percentile(spread, 99):.0f}", f"{max(spread):.0f}"]],
    )


if __name__ == "__main__":
    main()
