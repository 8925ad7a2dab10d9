"""Which message bus carries committed events between gateways (issue 17): NATS, Redis Streams or
Postgres LISTEN/NOTIFY, measured on this machine with real servers the script starts.

For each bus: one publisher (this process, standing for the gateways that commit) publishes
event envelopes (~600 bytes, an everyday `message.created`) one per bus message at a fixed rate
(open loop: each is stamped with the time it was due, so a publisher that falls behind shows as
latency); one subscriber process holds one connection per gateway and records, for each
connection, due time -> receipt. Reported: delivery latency p50/p99/max over every (event,
gateway), events lost, and the CPU each part spent per event: the bus server's (with Postgres,
its backends'), the publisher's, and the subscriber process's per delivery.

- NATS: core publish/subscribe (nats-server 2.9, nats-py). At most once; the relay fills what it
  misses from the log, so JetStream's persistence is not needed.
- Redis Streams: XADD (MAXLEN ~) / XREAD BLOCK per gateway (redis-server 7, redis-py asyncio).
- Postgres: NOTIFY (pg_notify, one transaction each, as a commit would send it) / LISTEN on
  psycopg 3 connections (Postgres 15).

    python bench/bus_compare.py                  # 3,000 events/s for 10 s to 3 and 10 gateways
    python bench/bus_compare.py --small          # 1,000 events/s for 3 s to 3 gateways: a quick look
    python bench/bus_compare.py --buses nats,redis --rate 5000 --gateways 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import machine_description, percentile, print_table, wait_for_idle  # noqa: E402

from tests.buses import NatsServer, PostgresServer, RedisServer  # noqa: E402

SUBJECT = "spacechat.events"
TICKS = os.sysconf("SC_CLK_TCK")


def envelope(index: int, due_ns: int) -> bytes:
    """An event-sized body whose first bytes say when it was due."""
    head = b'{"t":%d,"i":%d,' % (due_ns, index)
    return head + b'"pad":"' + b"x" * (560 - len(head)) + b'"}'


def due_of(body: bytes) -> int:
    return int(body[5 : body.index(b",")])


# --- the subscriber process ------------------------------------------------------------------------


async def subscribe(bus: str, url: str, gateways: int, count: int, timeout: float) -> dict[str, Any]:
    latencies: list[float] = []
    received = [0] * gateways
    done = asyncio.Event()

    def got(gateway: int, body: bytes) -> None:
        latencies.append((time.monotonic_ns() - due_of(body)) / 1e6)
        received[gateway] += 1
        if received[gateway] == count and all(n >= count for n in received):
            done.set()

    closers = await SUBSCRIBERS[bus](url, gateways, got)
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    for close in closers:
        await close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"latencies": latencies, "received": received, "cpu": usage.ru_utime + usage.ru_stime}


async def nats_subscribers(url: str, gateways: int, got: Any) -> list[Any]:
    import nats

    closers = []
    for gateway in range(gateways):
        nc = await nats.connect(url, pending_size=64 * 1024 * 1024)

        async def handler(msg: Any, gateway: int = gateway) -> None:
            got(gateway, msg.data)

        await nc.subscribe(SUBJECT, cb=handler, pending_msgs_limit=1_000_000)
        await nc.flush()
        closers.append(nc.close)
    return closers


async def redis_subscribers(url: str, gateways: int, got: Any) -> list[Any]:
    import redis.asyncio as redis

    tasks = []
    clients = []
    # Readers stop between reads: a cancelled blocking XREAD can leave redis-py's connection
    # waiting for ever (the 2026-12-05 idle run hung in close for 18 minutes).
    stopping = asyncio.Event()
    for gateway in range(gateways):
        client = redis.Redis.from_url(url)
        clients.append(client)
        last = (await client.xinfo_stream(SUBJECT))["last-generated-id"] if await client.exists(SUBJECT) else b"0-0"

        async def read(client: Any = client, gateway: int = gateway, last: Any = last) -> None:
            while not stopping.is_set():
                answer = await client.xread({SUBJECT: last}, block=200, count=1000)
                for _, entries in answer:
                    for entry_id, fields in entries:
                        last = entry_id
                        got(gateway, fields[b"e"])

        tasks.append(asyncio.create_task(read()))

    async def close() -> None:
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()

    return [close]


async def postgres_subscribers(url: str, gateways: int, got: Any) -> list[Any]:
    import psycopg

    tasks = []
    conns = []
    for gateway in range(gateways):
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        conns.append(conn)
        await conn.execute("LISTEN spacechat")

        async def read(conn: Any = conn, gateway: int = gateway) -> None:
            async for notify in conn.notifies():
                got(gateway, notify.payload.encode())

        tasks.append(asyncio.create_task(read()))

    async def close() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for conn in conns:
            await conn.close()

    return [close]


SUBSCRIBERS = {"nats": nats_subscribers, "redis": redis_subscribers, "postgres": postgres_subscribers}


# --- the publisher ---------------------------------------------------------------------------------


async def nats_publisher(url: str) -> tuple[Any, Any]:
    import nats

    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)

    async def publish(body: bytes) -> None:
        await nc.publish(SUBJECT, body)

    async def close() -> None:
        await nc.flush()
        await nc.close()

    return publish, close


async def redis_publisher(url: str) -> tuple[Any, Any]:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)

    async def publish(body: bytes) -> None:
        await client.xadd(SUBJECT, {"e": body}, maxlen=100_000, approximate=True)

    return publish, client.aclose


async def postgres_publisher(url: str) -> tuple[Any, Any]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)

    async def publish(body: bytes) -> None:
        await conn.execute("SELECT pg_notify('spacechat', %s)", (body.decode(),))

    return publish, conn.close


PUBLISHERS = {"nats": nats_publisher, "redis": redis_publisher, "postgres": postgres_publisher}
SERVERS: dict[str, type[NatsServer | RedisServer | PostgresServer]] = {
    "nats": NatsServer,
    "redis": RedisServer,
    "postgres": PostgresServer,
}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (Postgres's backends), reaped ones included."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += sum(int(value) for value in fields[11:15]) / TICKS
    return total


async def publish_at_rate(publish: Any, rate: int, count: int) -> None:
    interval = 1_000_000_000 / rate
    start = time.monotonic_ns() + 20_000_000
    for index in range(count):
        due = start + int(index * interval)
        wait = (due - time.monotonic_ns()) / 1e9
        if wait > 0.0005:
            await asyncio.sleep(wait)
        await publish(envelope(index, due))


async def measure(bus: str, rate: int, seconds: float, gateways: int) -> dict[str, Any]:
    server = SERVERS[bus]()
    server.start()
    try:
        count = int(rate * seconds)
        subscriber = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measuring
            [
                *[sys.executable, __file__, "--role", "subscribe", "--buses", bus, "--url", server.url],
                *["--gateways", str(gateways), "--count", str(count), "--timeout", str(seconds + 20)],
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert subscriber.stdout is not None
        assert subscriber.stdout.readline().strip() == "ready"
        publish, close = await PUBLISHERS[bus](server.url)
        before_server, before_self = tree_cpu(server.pid), resource.getrusage(resource.RUSAGE_SELF)
        await publish_at_rate(publish, rate, count)
        await close()
        result = orjson.loads(await asyncio.to_thread(subscriber.stdout.read))
        subscriber.wait(10)
        after_self = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = tree_cpu(server.pid) - before_server
        publisher_cpu = (after_self.ru_utime + after_self.ru_stime) - (before_self.ru_utime + before_self.ru_stime)
    finally:
        server.stop()
    latencies = result["latencies"]
    return {
        "bus": bus,
        "gateways": gateways,
        "rate": rate,
        "events": count,
        "lost": count * gateways - sum(result["received"]),
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "max": max(latencies) if latencies else float("nan"),
        "server_us": server_cpu / count * 1e6,
        "publisher_us": publisher_cpu / count * 1e6,
        "subscriber_us": result["cpu"] / max(1, len(latencies)) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buses", default="nats,redis,postgres")
    parser.add_argument("--rate", type=int, default=3000, help="events per second published")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--gateways", default="3,10", help="subscribing gateways, one connection each")
    parser.add_argument("--small", action="store_true", help="1,000 events/s for 3 s to 3 gateways")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--role", default="run", choices=["run", "subscribe"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "subscribe":
        result = asyncio.run(subscribe(args.buses, args.url, int(args.gateways), args.count, args.timeout))
        sys.stdout.write(orjson.dumps(result).decode())
        return
    if args.small:
        args.rate, args.seconds, args.gateways = 1000, 3, "3"
    print(f"bus_compare: {machine_description()}; {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    for gateways in [int(n) for n in args.gateways.split(",")]:
        for bus in args.buses.split(","):
            wait_for_idle()
            rows.append(asyncio.run(measure(bus, args.rate, args.seconds, gateways)))
    print_table(
        f"Committed events to gateways: {args.rate:,}/s for {args.seconds:g} s, latency due -> received",
        [
            "bus",
            "gateways",
            "p50 ms",
            "p99 ms",
            "max ms",
            "lost",
            "server µs/event",
            "publisher µs/event",
            "subscriber µs/delivery",
        ],
        [
            [
                r["bus"],
                r["gateways"],
                f"{r['p50']:.2f}",
                f"{r['p99']:.2f}",
                f"{r['max']:.1f}",
                r["lost"],
                f"{r['server_us']:.1f}",
                f"{r['publisher_us']:.1f}",
                f"{r['subscriber_us']:.1f}",
            ]
            for r in rows
        ],
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(rows))


if __name__ == "__main__":
    main()
