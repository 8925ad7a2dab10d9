"""Where a message's and a delivery's CPU goes, inside the server (issue 16).

The other benchmarks time what a client sees; this one says what the server spent it on, with
counters inside a real `spacechat serve` (bench/probe/sitecustomize.py, loaded only here):

1. **Requests one after another**, one client, one keep-alive connection: the server's CPU per
   request (every thread, from /proc) and the client's round trip, for `GET /v1/me`, reading a
   thread, a reply and a top-level post.
2. **The statements of a reply**: while the replies of (1) run, every statement on the store's
   writing connection is timed (wall and the running thread's CPU), by thread and SQL text.
3. **The fan-out loop**: N raw SSE subscribers (in `--client-procs` processes), messages posted
   one at a time as in fanout.py; the CPU the loop's thread spent in `Bus._serve` per subscriber
   it walked, beside the server's whole CPU per delivery. What is above the raw limit's figure
   (../shared/limit/fanout_limit.py, same sitting) is what a faster fan-out has to remove.

    python bench/anatomy.py                                  # 1,000 requests each; 5,000 subscribers, 300 messages
    python bench/anatomy.py --subscribers 1000 --src /tmp/snapshot
    python bench/anatomy.py --small                          # a quick check that it works
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from clients import SubscriberPool
from fanout import PADDING
from harness import (
    HTTPConnection,
    Server,
    add_client_options,
    add_server_options,
    begin,
    bench_config,
    general_channel,
    log,
    new_thread,
    print_table,
    run_async,
    server_environment,
    wait_for_idle,
)

PROBE = Path(__file__).resolve().parent / "probe"


def probe_environment(src: Path | None, output: Path) -> dict[str, str]:
    """The server's PYTHONPATH with the probe's directory first, and where it writes."""
    path = [str(PROBE), *filter(None, [server_environment(src).get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path), "BENCH_PROBE_OUTPUT": str(output)}


def _take(output: Path) -> dict[str, Any] | None:
    """What the probe wrote (it renames a whole file into place), once; None until then."""
    try:
        text = output.read_text()
    except FileNotFoundError:
        return None
    output.unlink()
    data: dict[str, Any] = json.loads(text)
    return data


async def recorded(server: Server, output: Path) -> dict[str, Any]:
    """Stop the probe's recording and read what it wrote."""
    assert server.process is not None
    server.process.send_signal(signal.SIGUSR2)
    for _ in range(200):
        data = _take(output)
        if data is not None:
            return data
        await asyncio.sleep(0.05)
    raise RuntimeError("the server's probe wrote nothing (was bench/probe on its PYTHONPATH?)")


async def start_recording(server: Server) -> None:
    """Start the probe's recording, and give the server's loop a moment to run its handler."""
    assert server.process is not None
    server.process.send_signal(signal.SIGUSR1)
    await asyncio.sleep(0.2)


def cpu(server: Server) -> float:
    return sum(server.cpu_split())


async def requests(server: Server, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    channel_id = await general_channel(conn)
    thread_id, _ = await new_thread(conn, channel_id)
    kinds = [
        ("GET /v1/me", "GET", "/v1/me", None, 200),
        ("GET a thread", "GET", f"/v1/threads/{thread_id}", None, 200),
        ("POST a reply", "POST", f"/v1/threads/{thread_id}/messages", {"text": "a reply" + PADDING}, 201),
        ("POST a top-level message", "POST", f"/v1/channels/{channel_id}/messages", {"text": "hello" + PADDING}, 201),
    ]
    rows, statements = [], None
    for label, method, path, body, expected in kinds:
        for _ in range(args.requests // 10):  # warm its code paths
            await conn.request(method, path, body)
        await asyncio.sleep(0.3)
        if label == "POST a reply":
            await start_recording(server)
        before, started, rounds = cpu(server), time.perf_counter(), []
        for _ in range(args.requests):
            sent = time.perf_counter()
            status, answer = await conn.request(method, path, body)
            rounds.append(time.perf_counter() - sent)
            if status != expected:
                raise RuntimeError(f"{label}: {status} {answer[:200]!r}")
        spent, elapsed = cpu(server) - before, time.perf_counter() - started
        if label == "POST a reply":
            statements = await recorded(server, output)
        rows.append(
            {
                "what": label,
                "server_ms": spent / args.requests * 1000,
                "round_trip_p50_ms": statistics.median(rounds) * 1000,
                "per_second": args.requests / elapsed,
            }
        )
    conn.close()
    return {"requests": rows, "statements": statements}


async def fanout(server: Server, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    channel_id = await general_channel(conn)
    thread_id, _ = await new_thread(conn, channel_id)
    path = f"/v1/threads/{thread_id}/messages"
    prefix = f"anatomy-{secrets.token_hex(4)}-"
    pool = SubscriberPool(max(1, args.client_procs), server.host, server.port, server.token, prefix.encode())
    try:
        await pool.open(sse=args.subscribers)
        await asyncio.sleep(2.0)
        missed = 0
        for i in range(args.warmup + args.messages):
            if i == args.warmup:
                await start_recording(server)
                before = cpu(server)
            seen = pool.seen(i)
            status, answer = await conn.request("POST", path, {"text": f"{prefix}{i:06d}" + PADDING})
            if status != 201:
                raise RuntimeError(f"POST failed: {status} {answer[:200]!r}")
            try:
                await asyncio.wait_for(asyncio.shield(seen), 10.0)
            except TimeoutError:
                missed += 1
            pool.forget(i)
            await asyncio.sleep(args.gap_ms / 1000)
        spent = cpu(server) - before
        data = await recorded(server, output)
    finally:
        await pool.close()
        conn.close()
    serve = data["serve"]
    deliveries = args.messages * args.subscribers
    return {
        "subscribers": args.subscribers,
        "messages": args.messages,
        "missed_messages": missed,
        "server_us_per_delivery": spent / deliveries * 1e6,
        "serve_us_per_subscriber": serve["cpu_s"] / max(serve["subscribers"], 1) * 1e6,
        "serve_share": serve["cpu_s"] / max(spent, 1e-9),
        "serve_calls": serve["calls"],
    }


def statement_rows(statements: dict[str, Any], replies: int, top: int) -> list[list[str]]:
    rows = sorted(statements["statements"], key=lambda row: -row["cpu_s"])[:top]
    return [
        [
            row["thread"],
            f"`{row['sql'][:60]}`",
            f"{row['count'] / replies:.2f}",
            f"{row['wall_s'] / row['count'] * 1e6:.1f}",
            f"{row['cpu_s'] / row['count'] * 1e6:.1f}",
            f"{row['cpu_s'] / replies * 1e6:.1f}",
        ]
        for row in rows
    ]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="spacechat-anatomy-") as work:
        output = Path(work) / "probe.json"
        wait_for_idle()
        with Server(bench_config(), src=args.src, env=probe_environment(args.src, output)) as server:
            log("requests one after another")
            found = await requests(server, args, output)
            log(f"fan-out to {args.subscribers} subscribers")
            found["fanout"] = await fanout(server, args, output)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests of each kind (default 1000)")
    parser.add_argument("--subscribers", type=int, default=5000, help="fan-out subscribers (default 5000)")
    parser.add_argument("--messages", type=int, default=300, help="measured fan-out messages (default 300)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--gap-ms", type=float, default=20, help="pause between messages (default 20)")
    parser.add_argument("--top", type=int, default=12, help="statements listed (default 12)")
    add_client_options(parser, default_procs=1)
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.workers > 1:
        parser.error("--workers: the probe counts inside one server process; run it without")
    if args.small:
        args.requests, args.subscribers, args.messages = 100, 100, 20
    begin("anatomy", args)
    found = run_async(measure(args))

    print_table(
        f"Requests one after another, one client ({args.requests} each; server CPU from /proc, every thread)",
        ["request", "server CPU per request (ms)", "round trip p50 (ms)", "requests/s"],
        [
            [r["what"], f"{r['server_ms']:.3f}", f"{r['round_trip_p50_ms']:.3f}", f"{r['per_second']:,.0f}"]
            for r in found["requests"]
        ],
    )
    print_table(
        f"Statements of a reply on the store's writing connection, by CPU ({args.requests} replies)",
        ["thread", "statement", "per reply", "wall µs each", "CPU µs each", "CPU µs per reply"],
        statement_rows(found["statements"], args.requests, args.top),
    )
    f = found["fanout"]
    print_table(
        f"The fan-out loop: {f['subscribers']:,} SSE subscribers in {max(1, args.client_procs)} process(es), "
        f"{f['messages']} messages",
        ["server CPU per delivery (µs)", "in Bus._serve per subscriber (µs)", "Bus._serve's share", "messages missed"],
        [
            [
                f"{f['server_us_per_delivery']:.2f}",
                f"{f['serve_us_per_subscriber']:.2f}",
                f"{f['serve_share']:.0%}",
                f["missed_messages"],
            ]
        ],
    )
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
