"""Real message bus servers for the tests and bench/bus_compare.py (issue 17): nats-server and
redis-server (Debian's packages) started as subprocesses on free loopback ports, with their data
in a temporary directory, and stopped (or killed, or stopped and started again on the same port,
to play an outage) by the test. Nothing here assumes a server someone started by hand.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import postgres

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


class _Process:
    """A server subprocess on a fixed port that can be stopped and started again there."""

    name = "server"
    stop_signal = signal.SIGTERM
    pause_signal = signal.SIGKILL

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"spacechat-{self.name}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _Process:
        log = (self.root / "log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        _wait_listening(self.port, self.process)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pause(self) -> None:
        """Stop the server (its clients see the connection drop); `start` brings it back."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.pause_signal)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(self.stop_signal)
                try:
                    self.process.wait(10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            self.process = None
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class NatsServer(_Process):
    """nats-server 2.9, JetStream available (`-js`)."""

    name = "nats"

    def command(self) -> list[str]:
        return [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.root / "js")]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class RedisServer(_Process):
    """redis-server 7, no persistence: it carries messages, the log is elsewhere."""

    name = "redis"

    def command(self) -> list[str]:
        return [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class PostgresServer(_Process):
    """Postgres (the binaries tests/postgres.py found), `postgres` itself as the subprocess. Postgres refuses to
    run as root: as root it runs as the `postgres` system user, in a directory that user owns."""

    name = "postgres"
    stop_signal = signal.SIGINT  # a fast shutdown: SIGTERM would wait for every client to leave
    # An immediate shutdown, as a crash: the postmaster kills its backends (SIGKILL would leave
    # them running, holding the shared memory a restart needs).
    pause_signal = signal.SIGQUIT
    BIN = postgres.BIN

    def __init__(self) -> None:
        super().__init__()
        self.runas: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            # setpriv execs (runuser forks and waits), so a signal sent to the child reaches postgres.
            self.runas = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        initdb = [str(self.BIN / "initdb"), "-D", str(self.root / "data"), "-U", "postgres", "--auth=trust"]
        subprocess.run([*self.runas, *initdb, "--no-sync"], check=True, capture_output=True, stdin=subprocess.DEVNULL)

    def command(self) -> list[str]:
        return [
            *self.runas,
            str(self.BIN / "postgres"),
            "-D",
            str(self.root / "data"),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.root}",
            "-c",
            "max_connections=200",
        ]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def available() -> bool:
    return os.access(NATS_SERVER, os.X_OK)
