"""The sqlite3 module to use: pysqlite3 where installed (it can load extensions such as
sqlite-vec, which this machine's default Python build cannot), else the standard library's."""

from __future__ import annotations

from typing import Any

__all__ = ["Connection", "DatabaseError", "IntegrityError", "OperationalError", "Row", "connect", "sqlite3"]

try:  # pragma: no cover - which branch runs depends on the platform
    import pysqlite3.dbapi2 as sqlite3
except ImportError:  # pragma: no cover
    import sqlite3

Connection = sqlite3.Connection
Row = sqlite3.Row
IntegrityError = sqlite3.IntegrityError
OperationalError = sqlite3.OperationalError
DatabaseError = sqlite3.DatabaseError


BUSY_TIMEOUT_MS = 5000


def connect(path: str, *, synchronous: str = "full", readonly: bool = False) -> Any:
    """Open a connection with the pragmas every connection of the store shares."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
    load_vector_extension(conn)
    return conn


def load_vector_extension(conn: Any) -> bool:
    """Load sqlite-vec for memory embeddings; False where this sqlite3 cannot load extensions."""
    try:
        import sqlite_vec

        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
    except (AttributeError, ImportError, sqlite3.OperationalError):
        return False
    return True
