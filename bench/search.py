"""Search over a large store (issue 13): p50/p95 of `GET /v1/search` for a word (common, middling,
rare), with operators, phrases and negation, over N messages (1,000,000 by default) loaded straight
into the store; and what full-text indexing adds to the send path's CPU per message.

    python bench/search.py                      # 1,000,000 messages: ~10-15 min, ~1.5 GB of disk
    python bench/search.py --messages 50000 --queries 20 --sends 1000   # a quick look

How: a server starts once to make the organisation, its channels (some private, which the
searching owner is not in: their messages must be filtered out before ranking) and the owner;
it stops; the messages are written into its SQLite file with plain INSERTs (the FTS5 triggers of
migrations/0008_chat.sql index them as they go, as they do for every send), spread over a year,
40 channels, 50 authors and threads of 10; the server starts again on that file and the queries
run over loopback, one at a time. Indexing cost: two fresh servers, one with the FTS triggers
dropped, each takes the same sends; the server's CPU time per message is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import (
    HTTPConnection,
    Server,
    add_server_options,
    bench_config,
    describe_source,
    log,
    percentile,
    pin_client,
    print_table,
)

CHANNELS = 40
PRIVATE = 8  # of them private, without the searching owner
AUTHORS = 50
THREAD_LENGTH = 10
WORDS_PER_MESSAGE = 12
VOCABULARY = 30_000
SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def vocabulary(rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < VOCABULARY:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words, key=lambda w: (len(w), w))


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


async def prepare(server: Server) -> dict[str, Any]:
    """The organisation's ids, its channels (the last PRIVATE ones private, the owner gone)."""
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    try:
        me = await conn.json("GET", "/v1/me")
        channels = []
        for i in range(CHANNELS):
            private = i >= CHANNELS - PRIVATE
            made = await conn.json("POST", "/v1/channels", {"name": f"ch-{i}", "private": private}, expect=201)
            channels.append(made["channel"])
            if private:
                path = f"/v1/channels/{made['channel']['id']}/members/{me['user']['id']}"
                status, _ = await conn.request("DELETE", path)
                assert status == 204, status
        return {"org_id": me["user"]["org_id"], "owner": me["user"]["id"], "channels": channels}
    finally:
        conn.close()


def load(db_path: Path, world: dict[str, Any], count: int, seed: int = 7) -> tuple[float, list[str]]:
    """Write `count` messages in threads straight into the store; returns the seconds it took and
    the vocabulary by frequency (most common first)."""
    from spacechat_plugin.store import sqlite

    rng = random.Random(seed)
    words = vocabulary(rng)
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    conn = sqlite.connect(str(db_path), synchronous="normal")
    org, channels = world["org_id"], world["channels"]
    authors = [f"usr_bench_{i:03d}" for i in range(AUTHORS)]
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO users (id, org_id, kind, email, name, role, created_at, handle) VALUES (?, ?, 'human', ?, ?,"
        " 'member', ?, ?)",
        [
            (a, org, f"{a}@bench.example", f"Author {i}", stamp(now - 400 * 86400), f"author-{i}")
            for i, a in enumerate(authors)
        ],
    )
    conn.execute("COMMIT")
    seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]) + 1
    started = time.perf_counter()
    batch_messages: list[tuple[Any, ...]] = []
    batch_threads: list[tuple[Any, ...]] = []
    sampled = iter(rng.choices(words, cum_weights=weights, k=count * WORDS_PER_MESSAGE))
    for n in range(count):
        if n % THREAD_LENGTH == 0:
            channel = channels[rng.randrange(CHANNELS)]
            thread_id = f"th_bench_{n:09d}"
            root = f"msg_bench_{n:09d}"
        when = stamp(now - 365 * 86400 * (1 - n / count))
        author = authors[rng.randrange(AUTHORS)]
        text = " ".join(next(sampled) for _ in range(WORDS_PER_MESSAGE))
        attachments = '[{"id": "att_x", "filename": "f.png", "content_type": "image/png"}]' if n % 20 == 0 else "[]"
        batch_messages.append(
            (
                f"msg_bench_{n:09d}",
                seq,
                org,
                channel["team_id"],
                channel["id"],
                thread_id,
                author,
                text,
                attachments,
                when,
                when,
            )
        )
        if n % THREAD_LENGTH == THREAD_LENGTH - 1 or n == count - 1:
            replies = n % THREAD_LENGTH
            batch_threads.append(
                (thread_id, org, channel["team_id"], channel["id"], root, text[:80], replies, when, author, when, seq)
            )
        seq += 1
        if len(batch_messages) >= 20_000 or n == count - 1:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO threads (id, org_id, team_id, channel_id, root_message_id, title, reply_count, created_at,"
                " created_by_kind, created_by_id, last_message_at, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'user', ?,"
                " ?, ?)",
                batch_threads,
            )
            conn.executemany(
                "INSERT INTO messages (id, seq, org_id, team_id, channel_id, thread_id, author_kind, author_id, text,"
                " format, state, attachments, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'user', ?, ?,"
                " 'markdown', 'completed', ?, '{}', ?, ?)",
                batch_messages,
            )
            conn.execute("COMMIT")
            batch_messages, batch_threads = [], []
            if (n + 1) % 200_000 == 0:
                log(f"loaded {n + 1:,} messages")
    seconds = time.perf_counter() - started
    # The next send's seq must come after the loaded messages' (the store counts from the log).
    conn.execute("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (seq,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return seconds, words


def queries(words: list[str], world: dict[str, Any]) -> dict[str, list[str]]:
    common, middling, rare = words[5], words[300], words[8000]
    other = words[40]
    public = [c["name"] for c in world["channels"][: CHANNELS - PRIVATE]]
    return {
        "a common word (rank 5)": [common],
        "a middling word (rank 300)": [middling],
        "a rare word (rank 8,000)": [rare],
        "two words": [f"{middling} {other}"],
        "a phrase": [f'"{common} {other}"'],
        "a word, newest first": [common],
        "word in:#channel": [f"{common} in:#{name}" for name in public[:5]],
        "word from:@person": [f"{middling} from:@author-{i}" for i in range(5)],
        "word -word": [f"{middling} -{other}"],
        "word has:attachment after:date": [f"{common} has:attachment after:{stamp(time.time() - 90 * 86400)[:10]}"],
        "operators only: from: in:": [f"from:@author-{i} in:#{public[i]}" for i in range(5)],
    }


async def measure(server: Server, plan: dict[str, list[str]], repeats: int) -> list[list[Any]]:
    conn = await HTTPConnection.open(server.host, server.port, server.token)
    rows = []
    try:
        for name, texts in plan.items():
            sort = "newest" if "newest" in name else "relevance"
            for text in texts[:1]:  # warm the page cache for this query's words
                await conn.json("GET", f"/v1/search?q={_q(text)}&sort={sort}")
            timings, found = [], 0
            for i in range(repeats):
                text = texts[i % len(texts)]
                started = time.perf_counter()
                answer = await conn.json("GET", f"/v1/search?q={_q(text)}&sort={sort}&limit=20")
                timings.append((time.perf_counter() - started) * 1000)
                found = max(found, len(answer["results"]))
            rows.append([name, f"{percentile(timings, 50):.1f}", f"{percentile(timings, 95):.1f}", found])
    finally:
        conn.close()
    return rows


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


async def settled_cpu(server: Server) -> float:
    """The server's CPU seconds once it has stopped working: background work a send started (the
    semantic index embeds each message in a thread of its own, behind the answer) is counted."""
    last = server.cpu_seconds()
    while True:
        await asyncio.sleep(0.5)
        now = server.cpu_seconds()
        if now - last < 0.02:  # under 4 % of a core for half a second: idle
            return now
        last = now


async def send_cpu(src: Path | None, sends: int, *, index: bool, senders: int = 1, embeddings: bool = False) -> float:
    """Server CPU milliseconds per message for `sends` messages from `senders` at once (one: each
    send its own transaction, the worst case for indexing; more: group commit batches them), with
    or without the FTS triggers, and with or without the semantic index's embeddings."""
    root = Path(tempfile.mkdtemp(prefix="spacechat-bench-send-"))
    config = bench_config(embeddings=embeddings)
    server = Server(config, src=src, workdir=root).start()
    try:
        # Both servers are restarted on their file, so that neither is measured while it does a
        # first start's work in the background (2026-12-05: the first-started one used ~0.5 ms
        # more CPU per message over 3,000 sends, with or without the triggers).
        token = server.token
        server.stop()
        if not index:
            from spacechat_plugin.store import sqlite

            conn = sqlite.connect(str(root / "data" / "spacechat.db"))
            for trigger in ("messages_fts_insert", "messages_fts_update", "messages_fts_delete"):
                conn.execute(f"DROP TRIGGER {trigger}")
            conn.close()
        server = Server(config, src=src, workdir=root, token=token).start()
        conn = await HTTPConnection.open(server.host, server.port, server.token)
        channel = (await conn.json("POST", "/v1/channels", {"name": "send-bench"}, expect=201))["channel"]
        rng = random.Random(3)
        words = vocabulary(rng)[:5000]
        texts = [" ".join(rng.choices(words, k=WORDS_PER_MESSAGE)) for _ in range(sends)]
        for text in texts[:100]:  # warm up
            await conn.json("POST", f"/v1/channels/{channel['id']}/messages", {"text": text}, expect=201)
        conns = [conn] + [await HTTPConnection.open(server.host, server.port, server.token) for _ in range(senders - 1)]
        left = list(texts)

        async def sender(each: HTTPConnection) -> None:
            while left:
                await each.json("POST", f"/v1/channels/{channel['id']}/messages", {"text": left.pop()}, expect=201)

        before = await settled_cpu(server)
        await asyncio.gather(*(sender(each) for each in conns))
        used = await settled_cpu(server) - before
        for each in conns:
            each.close()
        return used * 1000 / sends
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def run(args: argparse.Namespace) -> None:
    print(f"Source: {describe_source(args.src)}; {pin_client()}")
    root = Path(tempfile.mkdtemp(prefix="spacechat-bench-search-"))
    try:
        server = Server(bench_config(), src=args.src, workdir=root).start()
        world = await prepare(server)
        token = server.token
        server.stop()
        log(f"loading {args.messages:,} messages into the store")
        seconds, words = load(root / "data" / "spacechat.db", world, args.messages)
        size = sum(p.stat().st_size for p in (root / "data").glob("spacechat.db*")) / 2**20
        server = Server(bench_config(), src=args.src, workdir=root, token=token).start()
        try:
            rows = await measure(server, queries(words, world), args.queries)
        finally:
            server.stop()
        print_table(
            f"Search over {args.messages:,} messages ({CHANNELS} channels, {PRIVATE} of them private and not the"
            f" searcher's; loaded in {seconds:.0f} s, {args.messages / seconds:,.0f}/s with indexing; {size:,.0f} MiB),"
            f" {args.queries} queries each, over HTTP",
            ["query", "p50 ms", "p95 ms", "results (of 20)"],
            rows,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for senders in (1, 20):
        without = await send_cpu(args.src, args.sends, index=False, senders=senders)
        with_index = await send_cpu(args.src, args.sends, index=True, senders=senders)
        embedded = await send_cpu(args.src, args.sends, index=True, senders=senders, embeddings=True)
        rows.append(
            [
                str(senders),
                f"{without:.3f}",
                f"{with_index:.3f}",
                f"{(with_index / without - 1) * 100:+.1f} %",
                f"{embedded:.3f} ({(embedded / with_index - 1) * 100:+.0f} %)",
            ]
        )
    print_table(
        f"Indexing on the send path: server CPU per message over {args.sends:,} sends, counted until the server"
        " is idle again (background work included)",
        [
            "senders at once",
            "CPU ms without the FTS triggers",
            "with them",
            "full-text indexing adds",
            "with the semantic index's embeddings too (the default with the memory extra)",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100, help="timed queries of each kind")
    parser.add_argument("--sends", type=int, default=5000, help="sends for the indexing cost")
    add_server_options(parser)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
