"""The store: migrations, group commit, the event log and its views in one transaction."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from spacechat_plugin.errors import Conflict, NotFound
from spacechat_plugin.events import SYSTEM, Actor, Event, MessageStreamDelta, SystemHealthChanged
from spacechat_plugin.resources import resource
from spacechat_plugin.store import log as event_log
from spacechat_plugin.store import messages, tenancy
from spacechat_plugin.store.db import Database, WriteTx
from spacechat_plugin.store.migrate import MigrationError, discover

pytestmark = pytest.mark.asyncio


async def open_db(path: Path, migrations: Path | None = None) -> Database:
    db = Database(path / "test.db", migrations=migrations or resource("migrations"), read_connections=2)
    await db.open()
    return db


async def test_the_wal_is_folded_in_and_restarted_while_writes_never_pause(tmp_path: Path) -> None:
    """The WAL does not grow without end under writes that never pause: its pages reach the
    database file and it is restarted from its start (the checkpoint counter in its header
    moves). SQLite's automatic checkpoint in the writer does it; a checkpoint on a connection of
    its own, tried for #16, never let the WAL restart under such a load (bench/README.md)."""
    db = await open_db(tmp_path)
    wal = tmp_path / "test.db-wal"
    page = "x" * 4000
    await db.write(lambda tx: tx.execute("CREATE TABLE filler (body TEXT)"))

    def restarts() -> int:  # the WAL header's checkpoint sequence number (bytes 12-15)
        with wal.open("rb") as header:
            return int.from_bytes(header.read(16)[12:], "big")

    first, stop = restarts(), asyncio.Event()

    async def write() -> None:  # each commit is the moment to look at the WAL's header
        while not stop.is_set():
            await db.write(lambda tx: tx.execute("INSERT INTO filler VALUES (?)", (page,)))
            if restarts() >= first + 2:
                stop.set()

    writers = [asyncio.create_task(write()) for _ in range(8)]
    try:
        async with asyncio.timeout(60):
            await stop.wait()
        assert (tmp_path / "test.db").stat().st_size > 4_000_000, "the pages reached the database file"
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await db.close()


def seed_channel(tx: WriteTx) -> dict[str, object]:
    org = tenancy.create_org(tx, "Acme")
    team = tenancy.create_team(tx, org["id"], "Eng")
    return tenancy.create_channel(tx, org_id=org["id"], team_id=team["id"], name="eng", actor=SYSTEM)


async def test_migrations_are_applied_in_order_and_recorded(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    try:
        shipped = [m.name for m in discover(resource("migrations"))]
        assert db.applied_now == shipped
        rows = await db.fetchall("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        assert [row["name"] for row in rows] == shipped
        assert all(len(row["checksum"]) == 64 for row in rows)
        assert await db.scalar("PRAGMA journal_mode") == "wal"
        assert await db.scalar("SELECT vec_version()") is not None, "sqlite-vec must load"
    finally:
        await db.close()
    again = await open_db(tmp_path)
    assert again.applied_now == []
    await again.close()


async def test_a_changed_applied_migration_stops_start_up(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(resource("migrations"), migrations)
    db = await open_db(tmp_path, migrations)
    await db.close()
    first = sorted(migrations.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after release\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await open_db(tmp_path, migrations)


async def test_an_unknown_applied_migration_stops_start_up(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    await db.close()
    conn = sqlite3.connect(tmp_path / "test.db")
    conn.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'x', 'now')")
    conn.commit()
    conn.close()
    with pytest.raises(MigrationError, match="does not ship"):
        await open_db(tmp_path)


# Light writes run their statements on the event loop, the others on the writer's thread
# (store/db.py): the batch's guarantees are the same either way.
ON_LOOP_OR_THREAD = pytest.mark.parametrize("light", [False, True], ids=["thread", "loop"])


@ON_LOOP_OR_THREAD
async def test_group_commit_isolates_a_failing_operation(tmp_path: Path, light: bool) -> None:
    db = await open_db(tmp_path)
    published: list[Event] = []
    db.on_commit = published.extend
    try:

        def good(tx: WriteTx) -> int | None:
            return tx.emit(Event(SystemHealthChanged(component="x", status="ok"))).seq

        def bad(tx: WriteTx) -> None:
            tx.emit(Event(SystemHealthChanged(component="y", status="down")))
            raise ValueError("refused")

        results = await asyncio.gather(
            *(db.write(bad if i % 3 == 0 else good, light=light) for i in range(30)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, ValueError)]
        seqs = [r for r in results if isinstance(r, int)]
        assert len(errors) == 10 and len(seqs) == 20
        assert seqs == list(range(1, 21)), "seqs stay contiguous: a rolled back event gives its seq back"
        assert [e.seq for e in published] == seqs
        assert await event_log.count(db) == 20
        components = {row[0] for row in await db.fetchall("SELECT DISTINCT event_type FROM events")}
        assert components == {"system.health.changed"}
    finally:
        await db.close()


@ON_LOOP_OR_THREAD
async def test_a_reply_to_a_thread_gone_since_the_route_found_it_is_not_found(tmp_path: Path, light: bool) -> None:
    """Retention may delete a thread between the route's look-up and the write: the reply is
    refused as not found (a 404, not a 500), and nothing of it is written."""
    db = await open_db(tmp_path)
    try:
        channel = await db.write(seed_channel)
        posted = await db.write(
            lambda tx: messages.post_message(tx, actor=Actor("user", "u1"), channel=channel, thread_id=None, text="hi")
        )
        before = await db.scalar("SELECT COUNT(*) FROM events")
        with pytest.raises(NotFound):
            await db.write(
                lambda tx: messages.post_message(
                    tx, actor=Actor("user", "u1"), channel=channel, thread_id="th_gone", text="too late"
                ),
                light=light,
            )
        assert await db.scalar("SELECT COUNT(*) FROM messages") == 1
        assert await db.scalar("SELECT COUNT(*) FROM events") == before
        thread = await db.fetchone("SELECT reply_count FROM threads WHERE id = ?", (posted.thread["id"],))
        assert thread["reply_count"] == 0
    finally:
        await db.close()


@ON_LOOP_OR_THREAD
async def test_event_and_view_rows_commit_together(tmp_path: Path, light: bool) -> None:
    db = await open_db(tmp_path)
    try:
        channel = await db.write(seed_channel)

        def post_then_fail(tx: WriteTx) -> None:
            messages.post_message(tx, actor=Actor("user", "u1"), channel=channel, thread_id=None, text="lost")
            raise RuntimeError("after the insert")

        with pytest.raises(RuntimeError):
            await db.write(post_then_fail, light=light)
        assert await db.scalar("SELECT COUNT(*) FROM messages") == 0
        assert await db.scalar("SELECT COUNT(*) FROM threads") == 0
        assert await db.scalar("SELECT COUNT(*) FROM events WHERE event_type LIKE 'message.%'") == 0
        result = await db.write(
            lambda tx: messages.post_message(
                tx, actor=Actor("user", "u1"), channel=channel, thread_id=None, text="kept"
            ),
            light=light,
        )
        row = await db.fetchone("SELECT seq, body FROM events WHERE event_type = 'message.created'")
        assert row["seq"] == result.message["seq"]
        assert b'"text":"kept"' in row["body"]
    finally:
        await db.close()


@ON_LOOP_OR_THREAD
async def test_an_operation_failing_half_way_leaves_nothing_and_its_batch_commits_once(
    tmp_path: Path, light: bool
) -> None:
    """#16: a batch runs without a savepoint per operation; one that fails after changing rows
    sends the whole batch round again with savepoints. The others commit exactly once, in order,
    with contiguous seqs; the failed ones leave no row and no event."""
    db = await open_db(tmp_path)
    published: list[Event] = []
    db.on_commit = published.extend
    try:
        channel = await db.write(seed_channel)
        seq_before = db.last_seq

        def post(text: str, fail: bool) -> Callable[[WriteTx], int]:
            def op(tx: WriteTx) -> int:
                result = messages.post_message(
                    tx, actor=Actor("user", "u1"), channel=channel, thread_id=None, text=text
                )
                if fail:
                    raise RuntimeError("after the insert")
                return int(result.message["seq"])

            return op

        results = await asyncio.gather(
            *(db.write(post(f"message {i}", fail=i % 4 == 1), light=light) for i in range(20)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, RuntimeError) for r in results) == 5
        kept = [f"message {i}" for i in range(20) if i % 4 != 1]
        rows = await db.fetchall("SELECT text FROM messages ORDER BY seq")
        assert [row[0] for row in rows] == kept, "each kept message once, in order; no failed one"
        assert await db.scalar("SELECT COUNT(*) FROM threads") == 15
        logged = [
            row[0] for row in await db.fetchall("SELECT seq FROM events WHERE seq > ? ORDER BY seq", (seq_before,))
        ]
        assert logged == list(range(seq_before + 1, seq_before + 31)), "two events per kept message, no gap"
        assert [e.seq for e in published if e.seq is not None and e.seq > seq_before] == logged
    finally:
        await db.close()


async def test_an_operation_sees_the_events_its_batch_logged_before_it(tmp_path: Path) -> None:
    """The batch's events are inserted with one statement at its end (#16), but an operation that
    reads the log still sees those of the operations before it."""
    db = await open_db(tmp_path)
    try:

        def emit(tx: WriteTx) -> int | None:
            return tx.emit(Event(SystemHealthChanged(component="x", status="ok"))).seq

        def count(tx: WriteTx) -> int:
            return int(tx.one("SELECT COUNT(*) FROM events")[0])

        results = await asyncio.gather(db.write(emit), db.write(emit), db.write(count), db.write(emit))
        assert list(results) == [1, 2, 2, 3]
        assert await event_log.count(db) == 3
    finally:
        await db.close()


async def test_live_only_events_are_never_logged(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    published: list[Event] = []
    db.on_commit = published.extend
    try:
        await db.write(lambda tx: tx.emit(Event(MessageStreamDelta(message_id="m", offset=0, text="hi"))))
        assert await event_log.count(db) == 0
        assert published[0].seq is None
    finally:
        await db.close()


async def test_retention_prunes_and_remembers_where(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    try:
        for _ in range(5):
            await db.write(
                lambda tx: tx.emit(
                    Event(SystemHealthChanged(component="x", status="ok"), timestamp="2020-01-01T00:00:00.000Z")
                )
            )
        await db.write(lambda tx: tx.emit(Event(SystemHealthChanged(component="x", status="ok"))))
        assert await db.write(lambda tx: event_log.prune(tx, 7)) == 5
        assert await event_log.pruned_through(db) == 5
        remaining = await event_log.read_after(db, 0)
        assert [e.seq for e in remaining] == [6]
    finally:
        await db.close()
    reopened = await open_db(tmp_path)
    try:
        seq = await reopened.write(lambda tx: tx.emit(Event(SystemHealthChanged(component="x", status="ok"))).seq)
        assert seq == 7, "seq keeps increasing across restarts and pruning"
    finally:
        await reopened.close()


async def test_idempotency_keys_expire_after_a_day(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    try:
        await db.write(
            lambda tx: tx.execute(
                "INSERT INTO idempotency_keys VALUES ('a', 'old', 'f', 201, '{}', '2020-01-01T00:00:00.000Z')"
            )
        )
        await db.write(
            lambda tx: tx.execute(
                "INSERT INTO idempotency_keys VALUES ('a', 'new', 'f', 201, '{}', strftime('%Y-%m-%dT%H:%M:%fZ'))"
            )
        )
        assert await db.write(messages.prune_idempotency_keys) == 1
        assert [row[0] for row in await db.fetchall("SELECT key FROM idempotency_keys")] == ["new"]
    finally:
        await db.close()


async def test_shared_writers_publish_the_logs_head_and_revocations_in_shared_memory(tmp_path: Path) -> None:
    """`spacechat serve --workers`: every process sees the newest seq any of them committed, with
    no query (the read barrier asks on every request); a file left from an older log is reset to
    where the log stands when a writer opens it."""

    def opened() -> Database:
        return Database(tmp_path / "test.db", migrations=resource("migrations"), read_connections=1, shared=True)

    def two_events(tx: WriteTx) -> None:
        for status in ("degraded", "ok"):
            tx.emit(Event(SystemHealthChanged(component="store", status=status)))

    one, other = opened(), opened()
    await one.open()
    await other.open()
    try:
        assert one.committed_head() == other.committed_head() == await event_log.head(one)
        await one.write(two_events)
        head = await event_log.head(one)
        assert head > 0 and other.committed_head() == head, "the other process sees it at once"
        await other.write(two_events)
        assert one.committed_head() == await event_log.head(one) > head
        # A revocation in one process changes the mark every other one reads.
        seen = other.revocation_mark()
        one.credentials_revoked()
        assert other.revocation_mark() != seen and other.revocation_mark() == one.revocation_mark()
    finally:
        await one.close()
        await other.close()
    # A head from a log that is no more (a backup restored over the file): reset on open.
    (tmp_path / "test.db.head").write_bytes((10**9).to_bytes(8, "little") + bytes(4088))
    again = opened()
    await again.open()
    try:
        assert again.committed_head() == await event_log.head(again)
    finally:
        await again.close()
    # One process alone needs no shared head: the log's head is asked of the database.
    alone = await open_db(tmp_path)
    try:
        assert alone.committed_head() is None
        alone.credentials_revoked()  # nothing to tell
        assert alone.revocation_mark() == 0
    finally:
        await alone.close()


HOLD_A_KEY = """
import asyncio, sys
from pathlib import Path
from spacechat_plugin.resources import resource
from spacechat_plugin.store import messages
from spacechat_plugin.store.db import Database

async def main() -> None:
    db = Database(Path(sys.argv[1]), migrations=resource("migrations"), read_connections=1, shared=True)
    await db.open()
    claim = messages.IdempotencyClaim("usr_1", "key-1", "fingerprint")
    await db.write(lambda tx: messages.reserve_claim(tx, claim))
    print("reserved", flush=True)
    sys.stdin.readline()  # mid-send until killed

asyncio.run(main())
"""


async def test_a_key_left_in_progress_by_a_killed_process_of_this_machine_is_free_at_once(tmp_path: Path) -> None:
    """`--workers`: a worker killed mid-send leaves its key marked in progress. The same send
    retried on another worker is refused (409) while the holder lives, and taken at once when it
    is gone, not 60 s later (`reserve_claim`, `_claimant_gone`)."""
    path = tmp_path / "test.db"
    db = Database(path, migrations=resource("migrations"), read_connections=1, shared=True)
    await db.open()
    claim = messages.IdempotencyClaim("usr_1", "key-1", "fingerprint")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_A_KEY, str(path), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 60) == b"reserved\n"
        with pytest.raises(Conflict):
            await db.write(lambda tx: messages.reserve_claim(tx, claim))
        holder.kill()
        await holder.wait()
        await db.write(lambda tx: messages.reserve_claim(tx, claim))
        held = await db.scalar("SELECT result FROM idempotency_keys WHERE key = 'key-1' AND status = 0")
        assert held is not None and messages.claimant() is not None
        assert messages.claimant() in held, "the retry holds the key now"
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await db.close()


HOLD_THE_WRITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO notes VALUES ('from another process')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


async def test_a_light_write_never_holds_the_loop_while_another_process_writes(tmp_path: Path) -> None:
    """A light write begins on the event loop (store/db.py); if another process holds the file's
    write lock (a CLI command, a backup tool), the loop does not wait on it: the batch waits on
    the writer's thread, and everything else on the loop carries on meanwhile."""
    db = await open_db(tmp_path)
    await db.write(lambda tx: tx.execute("CREATE TABLE notes (body TEXT)"))
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_THE_WRITE_LOCK,
        str(tmp_path / "test.db"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert other.stdin is not None and other.stdout is not None
    try:
        assert await asyncio.wait_for(other.stdout.readline(), 60) == b"locked\n"
        write = asyncio.create_task(db.write(lambda tx: tx.execute("INSERT INTO notes VALUES ('mine')"), light=True))
        # A read meanwhile is answered on the loop's next turns, after the write began its batch:
        # at once, where SQLite's busy handler would have held the loop 5 s.
        started = time.monotonic()
        assert await db.scalar("SELECT COUNT(*) FROM notes") == 0
        assert time.monotonic() - started < 2, "the loop waited for another process's lock"
        assert not write.done(), "it waits for the other process's transaction"
        other.stdin.write(b"commit\n")
        await other.wait()
        await asyncio.wait_for(write, 10)
        rows = await db.fetchall("SELECT body FROM notes ORDER BY rowid")
        assert [row[0] for row in rows] == ["from another process", "mine"]
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
        await db.close()
