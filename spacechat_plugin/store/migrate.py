"""Migrations are files: `migrations/NNNN_name.sql`, applied in order at start-up, each in its own
transaction, and recorded with a SHA-256 checksum. An applied migration whose file later changed,
or one the database has but this version does not ship, stops start-up."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .sqlite import DatabaseError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(Exception):
    """The database and the shipped migrations disagree; start-up must stop."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def applied(conn: Any) -> list[dict[str, Any]]:
    """What the database has applied: version, name, checksum, applied_at."""
    rows = conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version").fetchall()
    return [dict(row) for row in rows]


def apply_migrations(conn: Any, directory: Path, *, now: str, postgres: bool = False) -> list[str]:
    """Apply what is missing; return the names applied now. Postgres's migrations are their own
    files (`migrations/postgres/`), run as one script each inside a transaction of their own."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)"
    )
    shipped = discover(directory)
    by_version = {m.version: m for m in shipped}
    for row in applied(conn):
        migration = by_version.get(row["version"])
        if migration is None:
            raise MigrationError(
                f"the database has migration {row['name']} that this version of Spacechat does not ship"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {migration.name} changed after it was applied "
                f"(recorded checksum {row['checksum'][:12]}, file {migration.checksum[:12]})"
            )
    done = {row["version"] for row in applied(conn)}
    newly = []
    for migration in shipped:
        if migration.version in done:
            continue
        if postgres:
            _apply_postgres(conn, migration, now)
        else:
            _apply_sqlite(conn, migration, now)
        newly.append(migration.name)
    return newly


def _record(conn: Any, migration: Migration, now: str) -> None:
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        (migration.version, migration.name, migration.checksum, now),
    )


def _apply_sqlite(conn: Any, migration: Migration, now: str) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        # executescript would commit the open transaction first; run statement by statement.
        for statement in _statements(migration.sql):
            conn.execute(statement)
        _record(conn, migration, now)
        conn.execute("COMMIT")
    except DatabaseError as exc:
        conn.execute("ROLLBACK")
        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc


def _apply_postgres(conn: Any, migration: Migration, now: str) -> None:
    import psycopg

    try:
        with conn.raw.transaction():
            # Without parameters psycopg sends the file as one simple query: Postgres itself splits
            # it, dollar-quoted function bodies included.
            conn.raw.execute(migration.sql.encode())
            _record(conn, migration, now)
    except psycopg.Error as exc:
        raise MigrationError(f"migration {migration.name} failed: {exc}") from exc


def _statements(script: str) -> list[str]:
    """Split a script into complete statements, using SQLite's own notion of completeness so
    semicolons inside strings and trigger bodies are handled."""
    from .sqlite import sqlite3

    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()):
        raise MigrationError("a migration ends with an incomplete statement")
    return statements


async def applied_list(db: Any) -> list[dict[str, Any]]:
    """What `schema_migrations` records, through an open Database's read connection."""
    rows = await db.fetchall("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
    return [dict(row) for row in rows]
