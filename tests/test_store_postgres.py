"""The Postgres store (issue 17): migrations with checksums, `spacechat migrate --storage-url`, the
log's seq in commit order across writers, and the dialect seam. The API and realtime suites run
against it too (`--store=postgres`, tests/postgres-suite.txt); these are the store's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from spacechat_plugin.config import ConfigError, load_settings
from spacechat_plugin.events import Event, SystemHealthChanged
from spacechat_plugin.resources import resource
from spacechat_plugin.store import log as event_log
from spacechat_plugin.store.db import WriteTx
from spacechat_plugin.store.dialect import to_postgres
from spacechat_plugin.store.migrate import MigrationError, discover
from spacechat_plugin.store.postgres import PostgresDatabase
from spacechat_plugin.store.textsearch import tsquery

from .postgres import Cluster


def empty_database(cluster: Cluster, name: str) -> str:
    """A database with nothing in it (not the migrated template)."""
    with psycopg.connect(cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    return cluster.url(name)


def logged_seq(tx: WriteTx, event: Event) -> int:
    seq = tx.emit(event).seq
    assert seq is not None, "a logged event has a seq"
    return seq


async def open_db(url: str, migrations: Path | None = None) -> PostgresDatabase:
    db = PostgresDatabase(url, migrations=migrations or resource("migrations"), read_connections=2)
    await db.open()
    return db


async def test_postgres_migrations_are_applied_in_order_and_recorded(pg_cluster: Cluster) -> None:
    url = empty_database(pg_cluster, "migrations_recorded")
    db = await open_db(url)
    try:
        shipped = [m.name for m in discover(resource("migrations") / "postgres")]
        # One twin per SQLite migration, with the same number and name.
        assert shipped == [m.name for m in discover(resource("migrations"))]
        assert db.applied_now == shipped
        rows = await db.fetchall("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        assert [row["name"] for row in rows] == shipped
        assert all(len(row["checksum"]) == 64 for row in rows)
    finally:
        await db.close()
    again = await open_db(url)
    assert again.applied_now == []
    await again.close()


async def test_a_changed_postgres_migration_stops_start_up(pg_cluster: Cluster, tmp_path: Path) -> None:
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(resource("migrations"), migrations)
    url = empty_database(pg_cluster, "migrations_changed")
    await (await open_db(url, migrations)).close()
    first = sorted((migrations / "postgres").glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after release\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await open_db(url, migrations)


def test_spacechat_migrate_with_a_storage_url(pg_cluster: Cluster, tmp_path: Path) -> None:
    url = empty_database(pg_cluster, "migrate_cli")
    command = [sys.executable, "-m", "spacechat_plugin", "migrate", "--data-dir", str(tmp_path / "data")]
    first = subprocess.run([*command, "--storage-url", url], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    names = [m.name for m in discover(resource("migrations") / "postgres")]
    assert [line.removeprefix("applied ") for line in first.stdout.splitlines() if line.startswith("applied ")] == names
    second = subprocess.run([*command, "--storage-url", url], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert "applied " not in second.stdout, "nothing is applied twice"
    assert all(name in second.stdout for name in names), "it lists what is applied"
    assert not (tmp_path / "data" / "spacechat.db").exists(), "no SQLite file beside a Postgres store"


def test_a_storage_url_that_is_not_postgres_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"storage\.url"):
        load_settings(environ={"SPACECHAT_STORAGE__URL": "mysql://db/spacechat"})
    with pytest.raises(ConfigError, match="name the database"):
        load_settings(environ={"SPACECHAT_STORAGE__URL": "postgresql://db.internal:5432"})
    assert load_settings(environ={}).storage.url == "", "SQLite stays the default"


async def test_seqs_are_in_commit_order_across_writers(pg_cluster: Cluster) -> None:
    """Two stores on one database (as two gateways) write at once while a reader follows the log
    the way a resuming client does (`read_after` its last seq). Seqs come from the database under
    the log's lock, so the reader never passes a seq that a smaller one commits behind: it sees
    every event, and the log has no hole and no duplicate."""
    url = pg_cluster.new_database()
    first, second = await open_db(url), await open_db(url)
    per_writer = 150
    done = asyncio.Event()
    seen: list[int] = []

    async def follow() -> None:
        after = 0
        while True:
            finished = done.is_set()  # read before the page, so the last page is read after it
            page = await event_log.read_after(first, after)
            seen.extend(event.seq for event in page)
            if page:
                after = page[-1].seq
            elif finished:
                return
            else:
                await asyncio.sleep(0)

    async def burst(db: PostgresDatabase, name: str) -> list[int]:
        async def one(i: int) -> int:
            event = Event(SystemHealthChanged(component=f"{name}{i}", status="ok"))
            return await db.write(lambda tx: logged_seq(tx, event))

        return list(await asyncio.gather(*(one(i) for i in range(per_writer))))

    try:
        reader = asyncio.create_task(follow())
        written = await asyncio.gather(burst(first, "a"), burst(second, "b"))
        done.set()
        await reader
        everything = sorted(written[0] + written[1])
        assert everything == list(range(everything[0], everything[0] + 2 * per_writer)), "no hole, no duplicate"
        assert seen == sorted(seen) and len(seen) == len(set(seen))
        assert set(everything) <= set(seen), "the reader that follows the log missed a committed event"
    finally:
        await first.close()
        await second.close()


async def test_a_failed_operation_gives_back_its_seq(pg_cluster: Cluster) -> None:
    """An operation that fails after emitting rolls back to its savepoint: its seq is not used,
    so the next event follows the last committed one."""
    db = await open_db(pg_cluster.new_database())
    try:

        def fails(tx: object) -> None:
            tx.emit(Event(SystemHealthChanged(component="x", status="ok")))  # type: ignore[attr-defined]
            raise ValueError("after emitting")

        before = await db.write(lambda tx: logged_seq(tx, Event(SystemHealthChanged(component="a", status="ok"))))
        with pytest.raises(ValueError):
            await db.write(fails)
        after = await db.write(lambda tx: logged_seq(tx, Event(SystemHealthChanged(component="b", status="ok"))))
        assert after == before + 1
        assert await db.scalar("SELECT last_seq FROM log_seq") == after
    finally:
        await db.close()


def test_the_dialect_rewrites_sqlite_spellings() -> None:
    assert to_postgres("SELECT * FROM t WHERE a = ? AND b = :name AND c LIKE '%x%'") == (
        "SELECT * FROM t WHERE a = %s AND b = %(name)s AND c ILIKE '%%x%%'"
    )
    assert to_postgres("INSERT OR IGNORE INTO team_members VALUES (?, ?, ?)").endswith("ON CONFLICT DO NOTHING")
    assert to_postgres("INSERT OR REPLACE INTO health (component, status) VALUES (?, ?)").endswith(
        "ON CONFLICT (component) DO UPDATE SET status = excluded.status"
    )
    assert "GREATEST(a, b)" in to_postgres("SELECT MAX(a, b), MAX(c) FROM t")
    assert "MAX(c)" in to_postgres("SELECT MAX(a, b), MAX(c) FROM t")
    assert "IS DISTINCT FROM %s" in to_postgres("SELECT 1 FROM t WHERE a IS NOT ? AND b IS NOT NULL")
    assert "jsonb_array_elements_text" in to_postgres("SELECT 1 FROM t WHERE id IN (SELECT value FROM json_each(?))")


def test_search_expressions_keep_their_meaning_in_tsquery() -> None:
    assert tsquery('"deploy" AND "failed"') == "'deploy' & 'failed'"
    assert tsquery('("two words") NOT "bad"') == "( ('two' <-> 'words') ) & ! 'bad'"
    assert tsquery('"dep"*') == "'dep':*"
    assert tsquery('"it\'s"') == "('it' <-> 's')"
    assert tsquery(None) is None


def test_a_second_gateway_without_a_bus_is_refused_at_start(pg_cluster: Cluster, tmp_path: Path) -> None:
    """On Postgres with no bus, a gateway sees only its own commits and runs the agents: a second
    one on the same database would answer twice and miss the first one's events. It stops at
    start with the reason; once the first has stopped, a gateway starts there again."""
    from .support import STORAGE_URL, Server, toml_config

    env = {STORAGE_URL: pg_cluster.new_database()}
    first = Server(tmp_path / "a", toml_config(), env=dict(env)).start()
    try:
        second = Server(tmp_path / "b", toml_config(), env=dict(env))
        with pytest.raises(RuntimeError, match="server did not start"):
            second.start()
        said = "".join(second.output)
        assert "another Spacechat gateway runs on this database without a bus" in said, said[-2000:]
        assert "bus.url" in said
        with first.sync_client() as client:
            assert client.get("/v1/system/health").status_code == 200
    finally:
        first.stop()
    third = Server(tmp_path / "c", toml_config(), env=dict(env), create_owner=False).start()
    third.stop()


def test_audit_head_and_verify_read_the_postgres_log(pg_cluster: Cluster, tmp_path: Path) -> None:
    """`spacechat audit head|verify` read the audit log where the server keeps it: with
    `storage.url`, Postgres (they read only the SQLite file before). An altered row is named."""
    from .support import STORAGE_URL, Server, invite, toml_config

    url = pg_cluster.new_database()
    server = Server(tmp_path / "data", toml_config(), env={STORAGE_URL: url}).start()
    try:
        invite(server, server.token, "member")  # audited
    finally:
        server.stop()
    environ = {**os.environ, STORAGE_URL: url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "spacechat_plugin", *args, "--data-dir", str(tmp_path / "data")]
        return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60, check=False)

    head = cli("audit", "head")
    assert head.returncode == 0, head.stderr
    with psycopg.connect(url) as conn:
        newest = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert newest is not None and head.stdout.strip() == f"{newest[0]}:{newest[1]}"
    intact = cli("audit", "verify")
    assert intact.returncode == 0 and "chain intact" in intact.stdout, intact.stdout + intact.stderr
    with psycopg.connect(url, autocommit=True) as conn:  # a tamperer with the table owner's rights
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        conn.execute("UPDATE audit_log SET outcome = 'denied' WHERE id = 2")
    broken = cli("audit", "verify")
    assert broken.returncode == 1 and "BROKEN at row 2" in broken.stdout, broken.stdout + broken.stderr
