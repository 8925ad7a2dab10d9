"""Which database the store runs on: the SQLite file in the data directory (the default), or
Postgres when `storage.url` names one (issue 17). The composition root and the CLI ask here, so
neither knows a database class."""

from __future__ import annotations

from pathlib import Path

from .db import Database

SQLITE_FILE = "spacechat.db"


class BackendMissing(Exception):
    """`storage.url` names Postgres but the `postgres` extra is not installed."""


def database(
    url: str,
    data_dir: Path,
    *,
    migrations: Path,
    synchronous: str = "full",
    read_connections: int = 4,
    shared: bool = False,
) -> Database:
    """The store's database, not yet opened. `shared`: other processes write the SQLite file too
    (the workers of `spacechat serve --workers`)."""
    if not url:
        return Database(
            data_dir / SQLITE_FILE,
            migrations=migrations,
            synchronous=synchronous,
            read_connections=read_connections,
            shared=shared,
        )
    try:
        from .postgres import PostgresDatabase
    except ImportError as exc:
        raise BackendMissing(
            f"storage.url names Postgres, but psycopg is not installed ({exc.name}): pip install 'spacechat[postgres]'"
        ) from None
    return PostgresDatabase(url, migrations=migrations, read_connections=read_connections)
