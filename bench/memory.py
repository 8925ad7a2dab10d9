"""Memory (issue 12): sentence embedding on one core, listing a 10,000-candidate review queue, and
semantic search over 100,000 messages with tenancy filtering.

Runs in-process against a real SQLite file (the store, sqlite-vec and the model Spacechat uses),
pinned to one core, and prints a Markdown table:

- embedding: all-MiniLM-L6-v2 (int8 ONNX, onnxruntime, one thread) per sentence, over varied
  sentences of 5-40 words; target <= 10 ms.
- queue: the first page (50) of a queue of N pending candidates in 60 channels, with its total,
  as `GET /v1/memory/candidates` asks for it (readable channels filter, then JSON); target <= 100 ms.
- search: `Search.run` in `semantic` and `hybrid` modes, as a member who may read 48 of 60
  channels, over M messages (plus 20% as many in another organisation): query embedding, the
  vec0 scan with organisation partition and channel filter, materializing the hits; p95 target
  <= 150 ms. 100,000 messages cannot be embedded in a benchmark's time, so their vectors are made
  from real embeddings of a few hundred sentences, mixed and perturbed (the scan costs the same
  whatever the vectors say); their text is the sentences, so hybrid's FTS5 side has real words.

    python bench/memory.py                      # the issue's sizes (~5 min to build, then seconds)
    python bench/memory.py --messages 5000 --candidates 1000 --queries 20   # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from spacechat_plugin.events import SYSTEM, Actor, new_id, now_rfc3339
from spacechat_plugin.identity.permissions import Access, Principal
from spacechat_plugin.memory.embeddings import DIMENSIONS, Embedder
from spacechat_plugin.resources import resource
from spacechat_plugin.search.semantic import Search, readable_channels
from spacechat_plugin.store import memory as memory_store
from spacechat_plugin.store import tenancy, vectors
from spacechat_plugin.store.db import Database, WriteTx

SUBJECTS = [
    "the deploy",
    "Alice",
    "the budget",
    "our Lisbon office",
    "the API keys",
    "the design team",
    "Maria",
    "the staging database",
    "the quarterly review",
    "customer churn",
    "the TLS certificate",
    "Bob",
]
VERBS = [
    "moved to",
    "depends on",
    "was approved for",
    "needs a decision about",
    "is blocked by",
    "prefers",
    "will be ready after",
    "was discussed with",
]
OBJECTS = [
    "Thursday afternoon",
    "green tea",
    "the new pricing",
    "a second operator",
    "next week's release",
    "the security audit",
    "a larger disk",
    "the onboarding checklist",
    "parental leave",
    "the offsite",
]
CHANNELS = 60
READABLE = 48


def sentences(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        parts = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(rng.randint(1, 4))]
        made.append(("; ".join(parts) + ".").capitalize())
    return made


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_embedding(embedder: Embedder, texts: list[str]) -> dict[str, float]:
    embedder.embed("warm up")
    times = []
    for text in texts:
        started = time.perf_counter()
        embedder.embed(text)
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": statistics.median(times), "p95": percentile(times, 0.95), "n": len(times)}


async def build_org(db: Database, name: str, channels: int) -> tuple[str, list[dict[str, Any]]]:
    def write(tx: WriteTx) -> tuple[str, list[dict[str, Any]]]:
        org = tenancy.create_org(tx, name)
        team = tenancy.create_team(tx, org["id"], "General")
        made = [
            tenancy.create_channel(tx, org_id=org["id"], team_id=team["id"], name=f"c{i}", actor=SYSTEM)
            for i in range(channels)
        ]
        return org["id"], made

    return await db.write(write)


def mixed_vectors(base: list[bytes], count: int, seed: int = 11) -> list[bytes]:
    import numpy as np

    rng = np.random.default_rng(seed)
    matrix = np.frombuffer(b"".join(base), dtype=np.float32).reshape(len(base), DIMENSIONS)
    out: list[bytes] = []
    for start in range(0, count, 10_000):
        n = min(10_000, count - start)
        a, b = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
        w = rng.random((n, 1), dtype=np.float32)
        mixed = w * matrix[a] + (1 - w) * matrix[b] + rng.normal(0, 0.02, (n, DIMENSIONS)).astype(np.float32)
        mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
        out.extend(bytes(row.tobytes()) for row in mixed.astype(np.float32))
    return out


async def fill_messages(
    db: Database, org_id: str, channels: list[dict[str, Any]], texts: list[str], vecs: list[bytes]
) -> None:
    threads = {}

    def make_threads(tx: WriteTx) -> None:
        for channel in channels:
            thread_id = new_id("th")
            threads[channel["id"]] = thread_id
            tx.execute(
                "INSERT INTO threads (id, org_id, team_id, channel_id, root_message_id, title, created_at,"
                " created_by_kind, last_message_at, last_seq) VALUES (?, ?, ?, ?, ?, '', ?, 'user', ?, 0)",
                (thread_id, org_id, channel["team_id"], channel["id"], "-", now_rfc3339(), now_rfc3339()),
            )

    await db.write(make_threads)
    seq_base = int(await db.scalar("SELECT COALESCE(MAX(seq), 0) FROM messages") or 0) + 1_000_000
    for start in range(0, len(vecs), 2000):

        def batch(tx: WriteTx, start: int = start) -> None:
            for i in range(start, min(start + 2000, len(vecs))):
                channel = channels[i % len(channels)]
                message_id = new_id("msg")
                now = now_rfc3339()
                tx.execute(
                    "INSERT INTO messages (id, seq, org_id, team_id, channel_id, thread_id, author_kind,"
                    " author_id, text, state, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'user', 'u', ?, 'completed', ?, ?)",
                    (
                        message_id,
                        seq_base + i,
                        org_id,
                        channel["team_id"],
                        channel["id"],
                        threads[channel["id"]],
                        texts[i % len(texts)],
                        now,
                        now,
                    ),
                )
                vectors.upsert(
                    tx, kind="message", ref_id=message_id, org_id=org_id, channel_id=channel["id"], vector=vecs[i]
                )

        await db.write(batch)


async def fill_candidates(
    db: Database, org_id: str, channels: list[dict[str, Any]], count: int, texts: list[str]
) -> None:
    for start in range(0, count, 1000):

        def batch(tx: WriteTx, start: int = start) -> None:
            for i in range(start, min(start + 1000, count)):
                channel = channels[i % len(channels)]
                memory_store.create_candidate(
                    tx,
                    {
                        "org_id": org_id,
                        "team_id": channel["team_id"],
                        "channel_id": channel["id"],
                        "source": "agent",
                        "agent_id": "spacebot",
                        "content": texts[i % len(texts)],
                        "memory_type": "fact",
                        "importance": 0.6,
                    },
                    Actor("agent", "spacebot"),
                )

        await db.write(batch)


async def bench_queue(db: Database, org_id: str, readable: list[str], rounds: int) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        page, total = await memory_store.queue(
            db, org_id=org_id, status="pending", channel_ids=readable, before=None, limit=50
        )
        orjson.dumps({"candidates": page, "total": total})
        times.append((time.perf_counter() - started) * 1000)
    return {"p50": statistics.median(times), "p95": percentile(times, 0.95), "total": total}


async def bench_search(search: Search, who: Principal, queries: list[str], mode: str) -> dict[str, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        results = await search.run(who, query, mode=mode, kinds=["messages", "memories"], limit=20)
        times.append((time.perf_counter() - started) * 1000)
        assert all(r["channel_id"] in search_readable(search, who) for r in results), "tenancy"
    return {"p50": statistics.median(times), "p95": percentile(times, 0.95)}


def search_readable(search: Search, who: Principal) -> set[str]:
    return set(readable_channels(search.access, who))


async def main(args: argparse.Namespace) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    embedder = Embedder(threads=1)
    texts = sentences(args.sentences)
    started = time.perf_counter()
    embedding = bench_embedding(embedder, texts[: args.embed])
    print(f"embedding: {embedding['n']} sentences in {time.perf_counter() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(
            Path(folder) / "bench.db", migrations=resource("migrations"), synchronous="normal", read_connections=2
        )
        await db.open()
        try:
            assert await db.write(lambda tx: vectors.ensure(tx, DIMENSIONS)), "sqlite-vec must load"
            org_id, channels = await build_org(db, "Bench", CHANNELS)
            other_id, other_channels = await build_org(db, "Other", 10)
            base = [embedder.embed(t) for t in texts[: args.base]]
            print(f"building {args.messages} messages and {args.candidates} candidates…", flush=True)
            await fill_messages(db, org_id, channels, texts, mixed_vectors(base, args.messages))
            await fill_messages(db, other_id, other_channels, texts, mixed_vectors(base, args.messages // 5, seed=5))
            await fill_candidates(db, org_id, channels, args.candidates, texts)
            access = Access()
            access.load(await tenancy.all_channels(db), [])
            readable = [c["id"] for c in channels[:READABLE]]
            for channel in channels[READABLE:]:  # 12 private channels the member is not in
                access.channels[channel["id"]] = {**access.channels[channel["id"]], "private": True}
            who = Principal(
                Actor("user", "usr_bench"), org_id, frozenset({"messages:read"}), role="member", channels=frozenset()
            )
            assert set(readable_channels(access, who)) == set(readable)
            queue = await bench_queue(db, org_id, [c["id"] for c in channels], args.queries)  # an admin reads all
            search = Search(db, access, embedder)
            search.vectors_ready = True
            queries = sentences(args.queries, seed=99)
            semantic = await bench_search(search, who, queries, "semantic")
            hybrid = await bench_search(search, who, queries, "hybrid")
        finally:
            await db.close()
    rows = [
        ("embedding, per sentence, one core", embedding, "<= 10 ms"),
        (f"review queue of {queue['total']:,} candidates, first page", queue, "<= 100 ms"),
        (f"semantic search, {args.messages:,} messages, tenancy filtered", semantic, "p95 <= 150 ms"),
        ("hybrid search, same", hybrid, "(none)"),
    ]
    print()
    print("| figure | p50 | p95 | target |")
    print("|---|---|---|---|")
    for label, figure, target in rows:
        print(f"| {label} | {figure['p50']:.1f} ms | {figure['p95']:.1f} ms | {target} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--sentences", type=int, default=2000, help="distinct sentence texts")
    parser.add_argument("--base", type=int, default=300, help="sentences really embedded to make the vectors")
    parser.add_argument("--embed", type=int, default=300, help="sentences timed for the embedding figure")
    parser.add_argument("--queries", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
