"""A real Postgres for the tests (issue 17): `initdb` into a temporary directory, `pg_ctl start`
on a free loopback port, one database per test server, `pg_ctl stop` and the directory removed at
the end. Nothing here assumes a server someone started by hand.

Postgres refuses to run as root; when the tests run as root (CI does), the cluster runs as the
`postgres` system user through `runuser`, in a directory that user owns.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

# Not SPACECHAT_...: the servers the tests start inherit the environment, and every such variable
# is a setting to `spacechat serve`, which refuses unknown ones.
BIN_ENV = "TEST_SPACECHAT_PG_BIN"
DEBIAN_VERSIONS = Path("/usr/lib/postgresql")


def _installed_bin() -> Path:
    """The newest Postgres installed from Debian's packages (`/usr/lib/postgresql/<major>/bin` with
    an `initdb`): Debian 12 ships 15, later releases 16 or 17. With none, 15's directory, which
    `available()` then reports missing."""
    found = [path.parent for path in DEBIAN_VERSIONS.glob("*/bin/initdb") if path.parent.parent.name.isdigit()]
    if not found:
        return DEBIAN_VERSIONS / "15" / "bin"
    return max(found, key=lambda path: int(path.parent.name))


# The directory with initdb, pg_ctl and postgres; tests/buses.py's PostgresServer uses it too.
BIN = Path(os.environ[BIN_ENV]) if os.environ.get(BIN_ENV) else _installed_bin()
# `TEST_SPACECHAT_STORE=postgres` (or `pytest --store=postgres`) runs the servers the tests start
# on Postgres instead of SQLite.
STORE_ENV = "TEST_SPACECHAT_STORE"
TEMPLATE = "spacechat_template"


def store() -> str:
    return os.environ.get(STORE_ENV, "sqlite")


def available() -> bool:
    return (BIN / "initdb").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One Postgres server with its data in a temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="spacechat-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def start(self) -> Cluster:
        # The C collation orders text by code point, as SQLite's BINARY does (docs/deployment.md).
        initdb = [str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]
        self._run(*initdb, "-E", "UTF8", "--locale=C", "--no-sync")
        # Tests need no durability across a machine crash; the store's own durability is
        # Postgres's default synchronous commit, which deployments keep (docs/deployment.md).
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")
        self._template()
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _template(self) -> None:
        """A migrated database to copy: CREATE DATABASE ... TEMPLATE takes milliseconds where
        running every migration for each test server would take a second."""
        import psycopg

        from spacechat_plugin.events import now_rfc3339
        from spacechat_plugin.resources import resource
        from spacechat_plugin.store.migrate import apply_migrations
        from spacechat_plugin.store.postgres import PgConnection

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(self.url(TEMPLATE), autocommit=True) as conn:
            apply_migrations(PgConnection(conn), resource("migrations") / "postgres", now=now_rfc3339(), postgres=True)

    def new_database(self) -> str:
        """A fresh, migrated database's URL."""
        return self._clone(TEMPLATE)

    def copy_database(self, url: str) -> str:
        """A copy of a database nobody is connected to (a stopped server's), as its own URL."""
        return self._clone(url.rsplit("/", 1)[1])

    def _clone(self, source: str) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {source}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_cluster: Cluster | None = None


def cluster() -> Cluster:
    """The session's cluster, started on first use."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster().start()
    return _cluster


def stop() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None
