"""The benchmarks' load generator counts what the server sent, however TCP cuts it (#16).

bench/clients.py's `MarkerSSE` reads the server's chunked SSE without searching every byte several
times (it was the limit of send.py); these hold its counts to the stream it was given, read in
pieces of every size, so a figure it reports is the server's.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from clients import MarkerSSE, Tracker


def chunked_stream(rng: random.Random, count: int) -> tuple[bytes, int]:
    """`count` events with markers, written by the "server" in chunks of 1-5 events, then
    `lagged` and the end; and how many writes carried events."""
    frames = [
        b'id: %d\ndata: {"text":"hello mk-%06d %s"}\n\n' % (seq, seq, b"x" * rng.randint(0, 300))
        for seq in range(1, count + 1)
    ]
    stream, writes, at = b"", 0, 0
    while at < len(frames):
        take = rng.randint(1, 5)
        body = b"".join(frames[at : at + take])
        stream += b"%x\r\n%s\r\n" % (len(body), body)
        at, writes = at + take, writes + 1
    lagged = b'event: lagged\ndata: {"resume_after":%d}\n\n' % count
    return stream + b"%x\r\n%s\r\n0\r\n\r\n" % (len(lagged), lagged), writes + 1


async def read_in_pieces(stream: bytes, rng: random.Random, largest: int) -> tuple[MarkerSSE, list[int]]:
    seen: list[int] = []
    tracker = Tracker(b"mk-", lambda report: seen.append(report[1]))
    tracker.total = 1
    reader = MarkerSSE("127.0.0.1", 1, "token", tracker=tracker)
    reader._head = None  # past the response head, as data_received leaves it
    at = 0
    while at < len(stream):
        size = rng.randint(1, largest)
        reader.data_received(stream[at : at + size])
        at += size
    return reader, seen


async def test_every_event_write_marker_and_the_lagged_end_are_counted_however_the_reads_fall() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        stream, writes = chunked_stream(rng, 199)
        reader, seen = await read_in_pieces(stream, rng, largest=rng.choice([7, 64, 400, 70_000]))
        assert reader.events == 199, f"seed {seed}: every id line counted once"
        assert reader.writes == writes, f"seed {seed}: every chunk with a body is a write"
        assert reader.last_id == 199 and reader.lagged, f"seed {seed}"
        assert seen == list(range(1, 200)), f"seed {seed}: every marker found once, in order"


async def test_a_stream_without_lagged_is_not_taken_for_one() -> None:
    rng = random.Random(1)
    stream, _ = chunked_stream(rng, 50)
    cut = stream.index(b"event: lagged")
    reader, _ = await read_in_pieces(stream[: cut - 4], rng, largest=500)
    assert not reader.lagged and reader.last_id == 50


async def test_send_reads_the_servers_loop_lag_from_a_real_metrics_page(tmp_path: Path) -> None:
    """bench/send.py says whose p99 it is from the server's `spacechat_event_loop_lag_seconds`:
    its pattern must find every bucket of the page `spacechat serve` writes, and the samples
    taken between two readings (one every 0.1 s) must land in one of those buckets."""
    import asyncio

    from harness import lag_percentile_ms, server_loop_lag

    from spacechat_plugin.operations.loop_lag import BUCKETS

    from .support import Server, toml_config

    server = Server(tmp_path / "data", toml_config(runtime={"mode": "none"})).start()
    try:
        host, port = server.url.removeprefix("http://").split(":")
        before = await server_loop_lag(host, int(port), server.token)
        assert [bound for bound, _ in before] == [*BUCKETS, float("inf")]
        counts = [count for _, count in before]
        assert counts == sorted(counts), "cumulative"
        async with asyncio.timeout(10):  # the server samples its loop every 0.1 s
            while (after := await server_loop_lag(host, int(port), server.token))[-1][1] < before[-1][1] + 3:
                pass
        assert lag_percentile_ms(before, after, 99) in [bound * 1000 for bound in (*BUCKETS, float("inf"))]
    finally:
        server.stop()
