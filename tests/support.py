"""Test helpers: a real `spacechat serve` process on loopback, and small HTTP/SSE clients."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from . import postgres

URL_LINE = re.compile(r"Spacechat is running at (http://[^\s/]+)/")
SETUP_LINE = re.compile(r"Create the owner account: \S+/setup#token=(setup_[A-Za-z0-9_-]+)")
STORAGE_URL = "SPACECHAT_STORAGE__URL"
OWNER = {"email": "owner@example.com", "name": "Olive Owner", "password": "correct horse battery staple"}

FAST_AGENT_CONFIG: dict[str, dict[str, Any]] = {
    "runtime": {"coalesce_ms": 30},
    "providers.scripted": {"kind": "scripted", "chars_per_second": 4000},
}


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_config(extra: str = "", *, top: str = "", **sections: Any) -> str:
    """The test servers' config: fast scripted agents, with `sections` merged over it
    (`toml_config(realtime={"max_lag": 20})`), `top` TOML (top-level keys) put first and `extra`
    TOML appended verbatim."""
    merged = {name: dict(values) for name, values in FAST_AGENT_CONFIG.items()}
    for name, values in sections.items():
        merged.setdefault(name.replace("__", "."), {}).update(values)
    lines = []
    for name, values in merged.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return top + "\n" + "\n".join(lines) + "\n" + extra


def several_workers() -> bool:
    """Whether test servers run `spacechat serve --workers N` (`pytest --workers N`)."""
    return int(os.environ.get("SPACECHAT_WORKERS") or 1) > 1


def serve_command(config: Path, data_dir: Path, port: int) -> list[str]:
    """`spacechat serve` with this config, data directory and port, as the tests run it."""
    command = ["serve", "--config", str(config), "--data-dir", str(data_dir), "--port", str(port)]
    return [sys.executable, "-m", "spacechat_plugin", *command]


@dataclass
class Server:
    data_dir: Path
    config_text: str = ""
    create_owner: bool = True
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0  # 0 picks a free port at each start; a fixed one survives restart() (browser tests)
    url: str = ""
    token: str = ""
    setup_token: str = ""
    owner: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self, timeout: float = 30) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir.parent / f"{self.data_dir.name}.toml"
        config.write_text(self.config_text)
        if postgres.store() == "postgres" and STORAGE_URL not in self.env:
            # A database of its own, kept across restart() as the data directory is.
            self.env[STORAGE_URL] = postgres.cluster().new_database()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(
            serve_command(config, self.data_dir, self.port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        ready = threading.Event()
        self.setup_token = ""

        def read() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                setup = SETUP_LINE.search(line)
                if setup:
                    self.setup_token = setup.group(1)
                url = URL_LINE.search(line)
                if url:
                    self.url = url.group(1)
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        if not ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.output[-50:]))
        token_file = self.data_dir.parent / f"{self.data_dir.name}.owner-token"
        if self.setup_token and self.create_owner:
            self.token = self._create_owner()
            token_file.write_text(self.token)
        elif token_file.exists():
            self.token = token_file.read_text().strip()
        return self

    def _create_owner(self) -> str:
        """Use the printed setup link as a person would, then make an owner API token for the tests."""
        with httpx.Client(base_url=self.url, timeout=30) as client:
            created = client.post("/v1/auth/setup", json={"token": self.setup_token, **OWNER, "return_token": True})
            assert created.status_code == 201, created.text
            self.owner = created.json()["user"]
            session = {"Authorization": f"Bearer {created.json()['session_token']}"}
            scopes = client.get("/v1/me", headers=session).json()["scopes"]
            token = client.post("/v1/tokens", json={"name": "tests", "scopes": scopes}, headers=session)
            assert token.status_code == 201, token.text
            return str(token.json()["secret"])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        code = self.process.returncode
        if self._reader is not None:
            self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> Server:
        self.stop()
        self.url = ""
        return self.start()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.auth, timeout=30, **kwargs)

    def sync_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth, timeout=30)

    def channel_id(self, name: str) -> str:
        with self.sync_client() as client:
            channels = client.get("/v1/channels").json()["channels"]
        return str(next(c["id"] for c in channels if c["name"] == name))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query straight against the server's store, whichever it is (a
        check of what is stored, beside the API)."""
        if STORAGE_URL in self.env:
            import psycopg

            with psycopg.connect(self.env[STORAGE_URL], autocommit=True) as conn:
                return [tuple(row) for row in conn.execute(sql).fetchall()]
        import sqlite3

        reader = sqlite3.connect(f"file:{self.data_dir / 'spacechat.db'}?mode=ro", uri=True)
        try:
            return [tuple(row) for row in reader.execute(sql).fetchall()]
        finally:
            reader.close()

    def stored_bytes(self) -> bytes:
        """Everything the store holds, as bytes to search for what must never be stored: the
        SQLite file and its WAL, or every row of every Postgres table as text."""
        if STORAGE_URL in self.env:
            import psycopg

            with psycopg.connect(self.env[STORAGE_URL], autocommit=True) as conn:
                tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
                return b"".join(
                    str(row[0]).encode() for table in tables for row in conn.execute(f"SELECT t::text FROM {table} t")
                )
        files = [self.data_dir / "spacechat.db", *self.data_dir.glob("spacechat.db-wal")]
        return b"".join(path.read_bytes() for path in files)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`spacechat <args> --data-dir <its data dir>` on this server's store: with the server's
        environment, so on Postgres the command reads the same `storage.url` the server does."""
        command = [sys.executable, "-m", "spacechat_plugin", *args, "--data-dir", str(self.data_dir)]
        environ = {**os.environ, **self.env}
        return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=timeout, check=False)

    def database(self, read_connections: int = 1) -> Any:
        """This server's store as the server opens it (the SQLite file, or its Postgres database),
        not yet opened: for a test that works on it while the server is stopped."""
        from spacechat_plugin.resources import resource
        from spacechat_plugin.store.backend import database

        url = self.env.get(STORAGE_URL, "")
        return database(url, self.data_dir, migrations=resource("migrations"), read_connections=read_connections)

    def raw_store(self) -> RawStore:
        """A plain connection to this server's store, for what the server itself never does (drop
        a guard, rewrite a row). Close it (`with`) before the server needs the rows again."""
        if STORAGE_URL in self.env:
            import psycopg

            return RawStore(psycopg.connect(self.env[STORAGE_URL], autocommit=True), postgres=True)
        import sqlite3

        return RawStore(sqlite3.connect(self.data_dir / "spacechat.db", isolation_level=None), postgres=False)

    def copy(self, data_dir: Path) -> Server:
        """A copy of this stopped server to change without touching it: its data directory, and on
        Postgres its database too. Not started."""
        import shutil

        shutil.copytree(self.data_dir, data_dir)
        env = dict(self.env)
        if STORAGE_URL in env:
            env[STORAGE_URL] = postgres.cluster().copy_database(env[STORAGE_URL])
        return Server(data_dir, self.config_text, env=env)


class RawStore:
    """A DB-API connection to a test server's store, each statement committed on its own. SQL is
    written in SQLite's spelling and rewritten for Postgres as the store's own is
    (store/dialect.py); `error` is what the database raises, `postgres` says which it is."""

    def __init__(self, conn: Any, *, postgres: bool) -> None:
        self.conn = conn
        self.postgres = postgres
        if postgres:
            import psycopg

            self.error: type[Exception] = psycopg.DatabaseError
        else:
            import sqlite3

            self.error = sqlite3.DatabaseError

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            from spacechat_plugin.store.dialect import to_postgres

            sql = to_postgres(sql)
        cursor = self.conn.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    def __enter__(self) -> RawStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def store_env() -> dict[str, str]:
    """The environment that puts a server (or a bare `spacechat` command) on the run's store: on
    Postgres a fresh database of its own, on SQLite nothing (the file in its data directory)."""
    if postgres.store() == "postgres":
        return {STORAGE_URL: postgres.cluster().new_database()}
    return {}


def terminate_timed(process: subprocess.Popen[Any], timeout: float = 30) -> tuple[int, float]:
    """SIGTERM, then (exit code, seconds until the process was gone). Call it on a thread
    (`asyncio.to_thread`) so the timing does not wait on a test's busy event loop."""
    signalled = time.monotonic()
    process.terminate()
    code = process.wait(timeout)
    return code, time.monotonic() - signalled


def wait_until(
    predicate: Any, timeout: float = 10, interval: float = 0.05, failure: str = "condition not met in time"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(failure)


@dataclass
class SSEEvent:
    event: str
    id: str | None
    data: str

    def json(self) -> Any:
        import json

        return json.loads(self.data)


def parse_sse(raw: str) -> list[SSEEvent]:
    """Parse a complete SSE text (the spec's field rules; comments and `retry` ignored)."""
    events: list[SSEEvent] = []
    data: list[str] = []
    event, last_id = "message", None
    for line in raw.replace("\r\n", "\n").split("\n"):
        if line == "":
            if data:
                events.append(SSEEvent(event, last_id, "\n".join(data)))
            data, event, last_id = [], "message", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value
    return events


async def post_messages(
    server: Server, channel_id: str, count: int, *, concurrency: int = 16, text: str = "m", thread_id: str | None = None
) -> list[dict[str, Any]]:
    """Post `count` messages (replies in one thread when thread_id is given); return them in
    the order the server acknowledged them."""
    import asyncio

    acked: list[dict[str, Any]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    url = f"/v1/threads/{thread_id}/messages" if thread_id else f"/v1/channels/{channel_id}/messages"
    async with server.client() as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                response = await client.post(url, json={"text": f"{text}{i}"})
                assert response.status_code == 201, response.text
                acked.append(response.json()["message"])

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return acked


def realtime_gauges(metrics: str) -> dict[str, float]:
    """The realtime gauges of a /metrics text: `subscribers` (open streams), and `parked_sse`,
    `parked_ws` (streams parked, by transport: spacechat_realtime_parked's `transport` label)."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            # Summed over the `gateway` label: one series per process with --workers.
            if sample.name == "spacechat_realtime_subscribers":
                found["subscribers"] = found.get("subscribers", 0) + sample.value
            elif sample.name == "spacechat_realtime_parked":
                key = f"parked_{sample.labels['transport']}"
                found[key] = found.get(key, 0) + sample.value
    return found


PASSWORD = "a long enough passphrase"


@dataclass
class Person:
    """A signed-in member for tests: user, role, and a bearer session reference (or bot token)."""

    user: dict[str, Any]
    token: str
    password: str = PASSWORD

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def id(self) -> str:
        return str(self.user["id"])


def invite(
    server: Server, inviter_token: str, role: str, *, name: str | None = None, channel_ids: list[str] | None = None
) -> Person:
    """Invite someone with `role` (as `inviter_token`) and accept it; return them signed in."""
    import secrets

    tag = secrets.token_hex(4)
    email = f"{role}-{tag}@example.com"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        invitation = client.post(
            "/v1/invitations",
            json={"role": role, "channel_ids": channel_ids or []},
            headers={"Authorization": f"Bearer {inviter_token}"},
        )
        assert invitation.status_code == 201, invitation.text
        accepted = client.post(
            "/v1/auth/invitations/accept",
            json={
                "token": invitation.json()["token"],
                "email": email,
                "name": name or f"{role.title()} {tag}",
                "password": PASSWORD,
                "return_token": True,
            },
        )
        assert accepted.status_code == 201, accepted.text
    return Person(accepted.json()["user"], accepted.json()["session_token"])


def other_org_owner(server: Server, name: str = "Globex") -> Person:
    """The owner of a second organisation on the same server, signed in (for tenancy tests)."""
    import secrets

    with httpx.Client(base_url=server.url, timeout=30) as client:
        org = client.post("/v1/orgs", json={"name": f"{name} {secrets.token_hex(2)}"}, headers=server.auth).json()
        made = client.post(
            "/v1/auth/setup",
            json={
                "token": org["setup_token"],
                "email": f"owner-{secrets.token_hex(3)}@{name.lower()}.example",
                "name": f"{name} Owner",
                "password": PASSWORD,
                "return_token": True,
            },
        )
        assert made.status_code == 201, made.text
    return Person(made.json()["user"], made.json()["session_token"])


def login(server: Server, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.post("/v1/auth/login", json={"email": email, "password": password, "return_token": True, **extra})


def bot(server: Server, admin_token: str, name: str = "Robo") -> Person:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = client.post("/v1/bots", json={"name": name}, headers={"Authorization": f"Bearer {admin_token}"})
        assert created.status_code == 201, created.text
    return Person(created.json()["user"], created.json()["secret"])


def events_after(server: Server, after: int, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The logged events after `after` that these credentials may see (replayed, up to `ready`)."""
    import json

    events = []
    with httpx.Client(base_url=server.url, headers=headers or server.auth, timeout=15) as client:
        with client.stream("GET", "/v1/realtime/sse", params={"after": after}) as stream:
            buffer = ""
            for chunk in stream.iter_text():
                buffer += chunk
                if "event: ready" in buffer:
                    break
    for block in buffer.split("\n\n"):
        lines = block.split("\n")
        if any(line.startswith("event: ") for line in lines):
            continue
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if data:
            events.append(json.loads("\n".join(data)))
    return events


def wait_for_message(server: Server, thread_id: str, predicate: Any, timeout: float = 15) -> dict[str, Any]:
    """Poll a thread's history until a message matches `predicate`."""

    def found() -> Any:
        with httpx.Client(base_url=server.url, headers=server.auth, timeout=15) as client:
            history = client.get(f"/v1/threads/{thread_id}/history", params={"limit": 200}).json()["messages"]
        return next((m for m in history if predicate(m)), None)

    return dict(wait_until(found, timeout=timeout))


PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(64)  # enough of a PNG for the upload check


SPACEBOT_AGENT = (
    '[[agents]]\nid = "spacebot"\nname = "Spacebot"\nprovider = "scripted"\nmodel = "scripted-1"\n'
    'channels = ["spacebot"]\n'
)


def agent_toml(agent_id: str, *, org: str = "", provider: str = "scripted", channels: tuple[str, ...] = ()) -> str:
    """An `[[agents]]` table (a config that has one replaces the default agents: add SPACEBOT_AGENT)."""
    names = ", ".join(f'"{name}"' for name in channels)
    return (
        f'[[agents]]\nid = "{agent_id}"\nname = "{agent_id.title()}"\nprovider = "{provider}"\n'
        f'model = "scripted-1"\norg = "{org}"\nchannels = [{names}]\n'
    )


def other_org(server: Server, name: str, email: str) -> Person:
    """Another organisation on the instance (made by its first owner) and that organisation's
    owner, signed in through the setup link it returns."""
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        created = client.post("/v1/orgs", json={"name": name})
        assert created.status_code == 201, created.text
        owner = client.post(
            "/v1/auth/setup",
            json={
                "token": created.json()["setup_token"],
                "email": email,
                "name": f"{name} Owner",
                "password": PASSWORD,
                "return_token": True,
            },
            headers={"Authorization": ""},
        )
        assert owner.status_code == 201, owner.text
    return Person(owner.json()["user"], owner.json()["session_token"])


def two_org_server(
    data_dir: Path, extra: str = "", *, globex_provider: str = "scripted-b", **sections: Any
) -> tuple[Server, Person]:
    """A server with a second organisation, Globex, whose own agent `globex-bot` (provider
    `scripted-b`, its own, unless `globex_provider` names another: `scripted` is the one
    `spacebot` uses, shared) answers in Globex's #general; the first organisation keeps `spacebot`."""
    sections.setdefault("providers__scripted-b", {"kind": "scripted", "chars_per_second": 4000})
    server = Server(data_dir, toml_config(extra, **sections)).start()
    globex = other_org(server, "Globex", "owner@globex.example")
    server.stop()
    agents = SPACEBOT_AGENT + agent_toml("globex-bot", org="Globex", provider=globex_provider, channels=("general",))
    server.config_text = toml_config(extra + "\n" + agents, **sections)
    server.start()
    return server, globex
