"""Timeline: GET /v1/threads/{id}/timeline for a long thread in a busy log.

Each run starts a fresh `spacechat serve` (CPU 0, no agents). `--noise` messages go to other
threads first (so the log is mostly other threads' events, which the `events_by_thread` index
of migration 0011 skips), then `--messages` replies to one thread; the thread's timeline is then
fetched `--fetches` times from one connection (CPU 1, this process), and every answer is checked
(exactly the thread's messages, in order). Reported: the latency of a fetch, median and p95, and
the answer's size. Medians over runs.

    python bench/timeline.py
    python bench/timeline.py --messages 200 --noise 1000 --runs 1 --fetches 5   # a quick check
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from harness import (
    CpuMonitor,
    HTTPConnection,
    Server,
    add_profile_options,
    add_server_options,
    begin,
    bench_config,
    general_channel,
    log,
    maybe_profile,
    median,
    new_thread,
    percentile,
    post_many,
    print_table,
    repeat_if_disturbed,
    run_async,
    wait_for_idle,
    with_range,
)

TEXT = "a message of a realistic length, about a hundred characters, for the provenance timeline bench"


@dataclass
class Result:
    fetches_ms: list[float] = field(default_factory=list)
    body_bytes: int = 0
    foreign_cpu: float = 0.0


async def prepare(server: Server, messages: int, noise: int) -> str:
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    channel_id = await general_channel(conn)
    other, _ = await new_thread(conn, channel_id, "another thread")
    thread_id, _ = await new_thread(conn, channel_id, "the timeline's thread")
    conn.close()
    started = time.perf_counter()
    if noise:
        await post_many(server.host, server.port, server.token, f"/v1/threads/{other}/messages", noise, text=TEXT)
    await post_many(server.host, server.port, server.token, f"/v1/threads/{thread_id}/messages", messages, text=TEXT)
    log(f"posted {noise} + {messages} messages in {time.perf_counter() - started:.1f} s")
    return thread_id


async def fetch(server: Server, thread_id: str, messages: int, count: int, result: Result) -> None:
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    try:
        for _ in range(count):
            started = time.perf_counter()
            status, body = await conn.request("GET", f"/v1/threads/{thread_id}/timeline")
            result.fetches_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"timeline answered {status}: {body[:200]!r}")
            steps = orjson.loads(body)["steps"]
            seqs = [step["seq"] for step in steps]
            if len(steps) != messages + 1 or seqs != sorted(seqs):  # + the thread's first message
                raise RuntimeError(f"wrong timeline: {len(steps)} steps")
            result.body_bytes = len(body)
    finally:
        conn.close()


def one_run(args: argparse.Namespace, profile: Path | None = None) -> Result:
    wait_for_idle()
    result = Result()
    with Server(bench_config(), src=args.src) as server:
        thread_id = run_async(prepare(server, args.messages, args.noise))
        wait_for_idle()
        with maybe_profile(server, profile, gil=args.profile_gil), CpuMonitor(server) as monitor:
            run_async(fetch(server, thread_id, args.messages, args.fetches, result))
        result.foreign_cpu = monitor.foreign
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages in the thread (default 2000)")
    parser.add_argument("--noise", type=int, default=20_000, help="messages in another thread first (default 20000)")
    parser.add_argument("--fetches", type=int, default=20, help="timeline fetches per run (default 20)")
    parser.add_argument("--runs", type=int, default=3)
    add_profile_options(parser, "one more run (not counted)")
    add_server_options(parser)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()

    begin("timeline", args)
    runs = []
    for _ in range(args.runs):
        result = repeat_if_disturbed(lambda: one_run(args), lambda r: r.foreign_cpu)
        runs.append(
            {
                "p50_ms": median(result.fetches_ms),
                "p95_ms": percentile(result.fetches_ms, 95),
                "kib": result.body_bytes / 1024,
            }
        )
    if args.profile:
        one_run(args, args.profile)
    print_table(
        f"GET /v1/threads/{{id}}/timeline: {args.messages} steps, {args.noise} other events in the log",
        ["fetch p50 ms", "fetch p95 ms", "answer KiB"],
        [
            [
                with_range([r["p50_ms"] for r in runs]),
                with_range([r["p95_ms"] for r in runs]),
                f"{median([r['kib'] for r in runs]):.0f}",
            ]
        ],
    )
    if args.json:
        args.json.write_text(orjson.dumps(runs).decode())


if __name__ == "__main__":
    main()
