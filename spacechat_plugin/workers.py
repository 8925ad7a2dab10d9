"""`spacechat serve --workers N`: one machine's cores serving one SQLite file (issue 16).

One process runs Spacechat on one core (its Python holds one GIL). With `workers = N` the
command becomes a small supervisor and N worker processes, each a whole Spacechat gateway as in
a deployment of several (issue 17), here on one machine:

- **One port.** The supervisor binds N listening sockets to the configured address with
  `SO_REUSEPORT` and hands one to each worker, so the kernel spreads new connections over them
  by their addresses. Each worker also gets a private loopback socket: the address where the
  other workers reach it (`gateway.url`: an operation on the agents goes to the worker running
  them).
- **One log.** Every worker writes the same SQLite file; a batch takes the file's writer lock
  and continues the log's seqs from the last committed one (store/db.py `shared`), so the log
  keeps one order and a seq is never committed after a larger one.
- **One fan-out.** Each worker's commits reach the others through a hub the supervisor runs on
  a Unix socket (realtime/localbus.py), and the relay delivers them in seq order, each once,
  reading the log for anything the hub did not bring: a client resumes on any worker with
  `Last-Event-ID`, with no gap and no duplicate.
- **Agents run once.** The worker holding the lease (a file lock in the data directory, let go
  by the kernel when its process dies) runs them; another takes it over within a second.
- **Crashes.** A worker that dies is started again; its clients reconnect (to any worker).
  Workers die with the supervisor (`PR_SET_PDEATHSIG`), so a supervisor killed with SIGKILL
  leaves no worker behind holding the file.

Workers start one after another (the first one bootstraps a new data directory alone), and the
supervisor prints the URL once all of them answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger("spacechat.workers")

START_TIMEOUT = 60.0  # seconds a worker may take to answer (migrations ran before, in the supervisor)
MAX_SOCKET_PATH = 100  # bytes of a Unix socket's path (sun_path holds 108 on Linux, 104 elsewhere)
RESTART_BACKOFF = (0.2, 1.0, 5.0)  # after a worker dies: waits before starting it again, growing
STABLE_AFTER = 60.0  # seconds of serving after which a worker's next death counts as its first again


@dataclass(frozen=True)
class WorkerContext:
    """What a worker is told by its supervisor (the hidden `--worker` option)."""

    index: int
    count: int
    listen_fd: int
    own_fd: int
    own_port: int
    hub: Path

    def spec(self) -> str:
        return f"{self.index}:{self.count}:{self.listen_fd}:{self.own_fd}:{self.own_port}:{self.hub}"

    @classmethod
    def parse(cls, spec: str) -> WorkerContext:
        index, count, listen_fd, own_fd, own_port, hub = spec.split(":", 5)
        return cls(int(index), int(count), int(listen_fd), int(own_fd), int(own_port), Path(hub))

    @property
    def bus_url(self) -> str:
        return f"unix://{self.hub}"

    @property
    def own_url(self) -> str:
        return f"http://127.0.0.1:{self.own_port}"

    def sockets(self) -> list[socket.socket]:
        """The shared listening socket first (its address is the one printed and linked), then
        the worker's own."""
        return [socket.socket(fileno=self.listen_fd), socket.socket(fileno=self.own_fd)]


# Set in a worker process before the host starts (cli.py); None in a single process.
current: WorkerContext | None = None


def die_with_parent() -> None:
    """Have the kernel kill this process when the supervisor dies, however it dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the supervisor was already gone before the call
        os._exit(1)


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` sockets listening on one address with SO_REUSEPORT (port 0: a free one, the same
    for all)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


def own_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Starts the workers, starts again any that dies, and stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, serve_args: Sequence[str]) -> None:
        self.settings = settings
        self.serve_args = list(serve_args)
        self.count = settings.workers
        self.listening: list[socket.socket] = []
        self.own: list[socket.socket] = []
        self.processes: list[asyncio.subprocess.Process | None] = []
        self.restarts = [0] * self.count  # each worker's deaths in a row (see `next_restart`)
        self.serving_since = [0.0] * self.count
        self.stopping = asyncio.Event()
        # The hub's socket lives in the data directory (mode 0700: only its owner connects), or
        # where a Unix socket's path fits (about 100 bytes) in a private temporary directory.
        self._dir: Path | None = None
        self.hub_path = settings.data_path / "workers.sock"
        if len(str(self.hub_path)) > MAX_SOCKET_PATH:
            self._dir = Path(tempfile.mkdtemp(prefix="spacechat-workers-"))
            self.hub_path = self._dir / "hub.sock"

    def context(self, index: int) -> WorkerContext:
        return WorkerContext(
            index,
            self.count,
            self.listening[index].fileno(),
            self.own[index].fileno(),
            self.own[index].getsockname()[1],
            self.hub_path,
        )

    @property
    def url(self) -> str:
        host, port = self.listening[0].getsockname()[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{shown}:{port}" if ":" not in shown else f"http://[{shown}]:{port}"

    async def run(self) -> None:
        from .realtime.localbus import Hub

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.listening = listening_sockets(self.settings.host, self.settings.port, self.count)
        self.own = [own_socket() for _ in range(self.count)]
        hub = Hub(self.hub_path)
        await hub.start()
        self.processes = [None] * self.count
        try:
            for index in range(self.count):  # one after another: the first bootstraps alone
                await self._start(index)
            if self.stopping.is_set():
                return
            shown = self.settings.public_url or self.url
            print(f"Spacechat is running at {shown}/ ({self.count} workers)", flush=True)
            await self._watch()
        finally:
            await self._stop_all()
            await hub.stop()
            for sock in [*self.listening, *self.own]:
                sock.close()
            if self._dir is not None:
                with contextlib.suppress(OSError):
                    self._dir.rmdir()

    async def _start(self, index: int) -> None:
        context = self.context(index)
        command = [sys.executable, "-m", "spacechat_plugin", "serve", *self.serve_args, "--worker", context.spec()]
        # A session of its own: Ctrl-C in a terminal reaches the supervisor alone, which stops
        # each worker once (a second signal would have uvicorn skip its graceful stop).
        process = await asyncio.create_subprocess_exec(
            *command, pass_fds=(context.listen_fd, context.own_fd), start_new_session=True
        )
        self.processes[index] = process
        deadline = time.monotonic() + START_TIMEOUT
        while not self.stopping.is_set():
            if process.returncode is not None:
                raise WorkerFailed(f"worker {index} exited with {process.returncode} while starting")
            if await _answers(context.own_port):
                log.info("worker %d (pid %d) is serving", index, process.pid)
                self.serving_since[index] = time.monotonic()
                return
            if time.monotonic() > deadline:
                raise WorkerFailed(f"worker {index} did not start within {START_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)  # polling its socket: a starting worker says nothing else

    async def _watch(self) -> None:
        """Until asked to stop: a worker that exits is started again, after a wait that grows
        while it keeps dying."""
        stop = asyncio.create_task(self.stopping.wait())
        exits = {
            asyncio.create_task(process.wait()): index
            for index, process in enumerate(self.processes)
            if process is not None
        }
        try:
            while not self.stopping.is_set():
                done, _ = await asyncio.wait([stop, *exits], return_when=asyncio.FIRST_COMPLETED)
                for ended in done - {stop}:
                    index = exits.pop(ended)
                    if self.stopping.is_set():
                        break
                    process = self.processes[index]
                    assert process is not None
                    code = ended.result()
                    log.warning("worker %d (pid %d) exited with %s; starting it again", index, process.pid, code)
                    served = time.monotonic() - self.serving_since[index]
                    backoff, self.restarts[index] = next_restart(self.restarts[index], served)
                    await asyncio.sleep(backoff)
                    try:
                        await self._start(index)
                    except WorkerFailed as exc:
                        log.error("%s", exc)
                        self.serving_since[index] = time.monotonic()  # it never served: a quick death
                    restarted = self.processes[index]
                    assert restarted is not None
                    exits[asyncio.create_task(restarted.wait())] = index
        finally:
            for task in [stop, *exits]:
                task.cancel()

    async def _stop_all(self) -> None:
        """SIGTERM to every worker (each stops as one server does), SIGKILL to any still there
        after 10 s."""
        running = [p for p in self.processes if p is not None and p.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in running)), timeout=10)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()


def next_restart(deaths_in_a_row: int, served_seconds: float) -> tuple[float, int]:
    """How long to wait before starting a dead worker again, and its deaths in a row with this
    one. The wait grows while it keeps dying (RESTART_BACKOFF); one that had served for
    STABLE_AFTER seconds starts again after the shortest wait, however often it died before."""
    if served_seconds >= STABLE_AFTER:
        deaths_in_a_row = 0
    return RESTART_BACKOFF[min(deaths_in_a_row, len(RESTART_BACKOFF) - 1)], deaths_in_a_row + 1


class WorkerFailed(Exception):
    """A worker could not be started."""


async def _answers(port: int) -> bool:
    """Whether a worker's own socket answers the host's liveness probe."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status = await asyncio.wait_for(reader.readline(), timeout=2)
        return status.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
