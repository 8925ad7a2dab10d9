"""Shared pieces of the Spacechat benchmarks.

- `Server`: a real `spacechat serve` subprocess on a free loopback port with a temp data dir,
  pinned to CPU 0 and sent SIGTERM if the benchmark dies; it takes the admin token from its stdout
  (or creates the owner through the printed setup link and an API token), and exposes the
  process's RSS and CPU time from /proc. `--src` (add_server_options) runs another source tree.
- `pin_client`, `wait_for_idle`, `CpuMonitor`, `repeat_if_disturbed`: the client runs on CPU 1,
  every run starts on an idle machine, and a run during which other processes used the CPU is done
  again (PERFORMANCE.md: other work on a 2-core machine easily doubles the figures).
- `HTTPConnection`: a minimal keep-alive HTTP/1.1 client over a raw asyncio protocol, so the load
  generator costs a few µs per request instead of aiohttp's ~100 µs.
- `SSEStream`: a raw SSE subscriber; subclasses see every chunk of the body with its arrival time,
  the base class checks the status and finds the `ready` control event.
- `Profiler`: py-spy attached to the server (raw collapsed stacks), summarised by profile_summary.py.

Nothing here imports Spacechat: the benchmarks talk to it over HTTP only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import http.client
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson

SERVER_CPU = 0
CLIENT_CPU = 1
URL_LINE = re.compile(r"Spacechat is running at http://([^\s/:]+):(\d+)/")
TOKEN_LINE = re.compile(r"admin token \(shown once, keep it safe\): (sc_[A-Za-z0-9_-]+)")
SETUP_LINE = re.compile(r"Create the owner account: \S+/setup#token=(setup_[A-Za-z0-9_-]+)")
OWNER = {"email": "bench@example.com", "name": "Bench Owner", "password": "correct horse battery staple"}
T = TypeVar("T")
PR_SET_PDEATHSIG = 1


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine --------------------------------------------------------------------------------


def _can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


# Decided once, at import: after pin_client() this process only sees the client CPU.
PINNABLE = _can_pin()


def pin_client() -> str:
    """Pin this process (and the threads it starts later) to the client CPU."""
    if not PINNABLE:
        return "not pinned (fewer than 2 CPUs available)"
    os.sched_setaffinity(0, {CLIENT_CPU})
    if SERVER_WORKERS > 1:
        return f"server ({SERVER_WORKERS} workers) on CPUs {SERVER_CPU} and {CLIENT_CPU}, client on CPU {CLIENT_CPU}"
    if SERVER_EVERY_CPU:
        return f"server (one process) on CPUs {SERVER_CPU} and {CLIENT_CPU}, client on CPU {CLIENT_CPU}"
    return f"server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}"


def raise_fd_limit() -> int:
    """Thousands of sockets: lift the soft open-files limit to the hard one (inherited by the server)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    with open("/proc/stat") as handle:
        for line in handle:
            if not line.startswith("cpu"):
                break
            name, *values = line.split()
            numbers = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
            idle = numbers[3] + numbers[4]
            out[name] = (sum(numbers) - idle, sum(numbers))
    return out


def cpu_busy(interval: float = 1.0) -> dict[str, float]:
    """Busy fraction of each CPU (and `cpu`, all of them) over `interval` seconds."""
    before = _cpu_times()
    time.sleep(interval)
    after = _cpu_times()
    busy: dict[str, float] = {}
    for name, (b1, t1) in after.items():
        b0, t0 = before.get(name, (0, 0))
        busy[name] = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    return busy


def wait_for_idle(max_busy: float = 0.10, settle: int = 2, timeout: float = 120) -> float:
    """Wait until every CPU is below `max_busy` for `settle` consecutive seconds; return the
    last overall busy fraction. Gives up (with a warning) after `timeout` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    calm = 0
    while True:
        busy = cpu_busy(1.0)
        per_cpu = [value for name, value in busy.items() if name != "cpu"]
        calm = calm + 1 if max(per_cpu) < max_busy else 0
        if calm >= settle:
            waited = time.monotonic() - started
            if waited > settle + 3:
                log(f"waited {waited:.0f} s for an idle machine")
            return busy["cpu"]
        if time.monotonic() > deadline:
            log(f"warning: machine not idle after {timeout:.0f} s (CPU busy {per_cpu}); running anyway")
            return busy["cpu"]


class CpuMonitor:
    """How much CPU went to processes other than the server and this client while measuring.

    A 2-core machine shared with other work gives figures that mean nothing; a run whose
    `foreign` share (CPU seconds per second, of any process but these two, kernel softirq work
    included) is above a threshold is done again."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.foreign = 0.0
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    @staticmethod
    def _busy_seconds() -> float:
        return _cpu_times()["cpu"][0] / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuMonitor:
        self._start = (time.monotonic(), self._busy_seconds(), self.server.cpu_seconds(), client_cpu_seconds())
        return self

    def __exit__(self, *exc: object) -> None:
        began, busy, server, client = self._start
        elapsed = time.monotonic() - began
        ours = (self.server.cpu_seconds() - server) + (client_cpu_seconds() - client)
        self.foreign = max(0.0, (self._busy_seconds() - busy) - ours) / max(elapsed, 1e-9)


# A share of one CPU that other processes may use during a measurement before it is repeated.
MAX_FOREIGN_CPU = 0.10


def repeat_if_disturbed(run: Callable[[], T], foreign: Callable[[T], float], *, tries: int = 4) -> T:
    """Run `run` (which waits for an idle machine itself) until other processes used less than
    MAX_FOREIGN_CPU of a core during its measurement; after `tries`, keep the last one."""
    for attempt in range(1, tries + 1):
        try:
            result = run()
        except Exception as exc:  # a server error is worth a second look, not a lost suite
            if attempt == tries:
                raise
            log(f"the run failed ({type(exc).__name__}: {exc}); run again ({attempt}/{tries})")
            continue
        share = foreign(result)
        if share <= MAX_FOREIGN_CPU:
            return result
        if attempt < tries:
            log(f"other processes used {share:.0%} of a CPU during the measurement; run again ({attempt}/{tries})")
        else:
            log(f"warning: other processes used {share:.0%} of a CPU during the last of {tries} tries; keeping it")
    return result


def machine_description() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, Python {platform.python_version()}"


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def with_range(values: Sequence[float], digits: int = 1) -> str:
    """`median (min–max)` of the runs' figures, so the spread between runs shows."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:,.{digits}f}"
    return f"{median(values):,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A Markdown table on stdout."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.stdout.flush()


# --- the server -----------------------------------------------------------------------------------


def spacechat_command() -> list[str]:
    """The `spacechat` console script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "spacechat"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("spacechat")
    if found:
        return [found]
    return [sys.executable, "-m", "spacechat_plugin"]


def bench_config(*, max_lag: int = 2000, ring_size: int = 8192, extra: str = "", embeddings: bool = False) -> str:
    """A config with no agent runtime (nothing replies) and the given realtime limits.

    The semantic index's embeddings are off unless asked for: with the memory extra installed
    each message is embedded behind its answer (~4 ms of CPU a message on this machine, see
    bench/search.py's last table), and a benchmark that seeds 100,000 messages in a minute would
    otherwise be measured while the server indexes them for the next ten."""
    memory = f"\n[memory]\nembeddings = {'true' if embeddings else 'false'}\n"
    return f'[runtime]\nmode = "none"\n\n[realtime]\nmax_lag = {max_lag}\nring_size = {ring_size}\n{memory}{extra}'


def server_environment(src: Path | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if src is not None:  # ahead of the editable install on sys.path
        env["PYTHONPATH"] = os.pathsep.join([str(src.resolve()), *filter(None, [env.get("PYTHONPATH")])])
    return env


def describe_source(src: Path | None) -> str:
    """Which spacechat_plugin the server runs, and its git commit when that is known."""
    code = "import pathlib, spacechat_plugin; root = pathlib.Path(spacechat_plugin.__file__).parent.parent; print(root)"
    root = Path(
        subprocess.run(
            [sys.executable, "-c", code],
            env=server_environment(src),
            cwd="/",  # not the current directory, which `python -c` puts first on sys.path
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    commit = ""
    if (root / ".commit").exists():  # written beside a `git archive` snapshot
        commit = (root / ".commit").read_text().strip().splitlines()[0]
        commit = commit[:12] if re.fullmatch(r"[0-9a-f]{40}", commit) else commit
    elif (root / ".git").exists():
        git = ["git", "-C", str(root)]
        commit = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout
        commit = commit.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "spacechat_plugin", "migrations"], capture_output=True
        )
        if dirty.stdout.strip():
            commit += " + uncommitted changes"
    return f"server source {root}" + (f" (commit {commit})" if commit else "")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--src",
        type=Path,
        help="run the server from this source tree (e.g. a `git archive` snapshot) instead of the installed one",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve with `spacechat serve --workers N` (N > 1: the server on every CPU, sharing the client's)",
    )
    parser.add_argument(
        "--server-every-cpu",
        action="store_true",
        help="leave one server process on every CPU instead of pinning it to its own (its SQLite threads"
        " may then run on the client's CPU, as in a deployment nobody pinned)",
    )


# `--workers` of the benchmark being run (set by `begin`): how many processes each Server serves with.
SERVER_WORKERS = 1
# `--server-every-cpu`: one server process left on every CPU (its SQLite writer and reader threads
# run outside the GIL, so they can use the CPU the client is on), as an unpinned deployment runs.
SERVER_EVERY_CPU = False


def _server_preexec() -> None:
    """In the server's process before exec: pin it (every thread it starts inherits that), and
    have it sent SIGTERM if this benchmark dies, so no server outlives its benchmark. Several
    workers get every CPU (the client's too: this machine has no other)."""
    if PINNABLE:
        every = SERVER_WORKERS > 1 or SERVER_EVERY_CPU
        os.sched_setaffinity(0, {SERVER_CPU, CLIENT_CPU} if every else {SERVER_CPU})
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Server:
    """One `spacechat serve` process with its own temp data dir, pinned to the server CPU."""

    config: str
    src: Path | None = None  # a source tree to run instead of the installed spacechat_plugin
    host: str = ""
    port: int = 0
    token: str = ""
    setup_token: str = ""
    process: subprocess.Popen[bytes] | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = None
    _lines: list[str] = field(default_factory=list)
    # A directory to keep the data in across a stop and a start (the caller removes it); set
    # `token` from the first start to sign in again.
    workdir: Path | None = None
    # More environment for the server process (bench/anatomy.py's probe).
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 60) -> Server:
        if self.workdir is not None:
            root = self.workdir
            self.port, self._lines = 0, []
        else:
            self._workdir = tempfile.TemporaryDirectory(prefix="spacechat-bench-")
            root = Path(self._workdir.name)
        (root / "config.toml").write_text(self.config)
        stderr = (root / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                *spacechat_command(),
                "serve",
                "--config",
                str(root / "config.toml"),
                "--data-dir",
                str(root / "data"),
                "--port",
                "0",  # the server binds a free port and prints it
                *(["--workers", str(SERVER_WORKERS)] if SERVER_WORKERS > 1 else []),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env={**server_environment(self.src), **self.env},
            preexec_fn=_server_preexec,
        )
        stderr.close()
        started = threading.Event()
        threading.Thread(target=self._read_stdout, args=(started,), daemon=True).start()
        if started.wait(timeout) and self.port and not self.token and self.setup_token:
            self.token = self._owner_token()
        if not self.port or not self.token:
            code = self.process.poll() if self.process is not None else None
            output = "".join(self._lines[-30:]) + self.log_tail()
            self.stop()
            raise RuntimeError(f"spacechat did not start (exit code {code}):\n{output}")
        return self

    def _read_stdout(self, started: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:  # keeps draining after start-up so the pipe never fills
            line = raw.decode(errors="replace")
            self._lines.append(line)
            if token := TOKEN_LINE.search(line):
                self.token = token.group(1)
            if setup := SETUP_LINE.search(line):
                self.setup_token = setup.group(1)
            if url := URL_LINE.search(line):
                self.host, self.port = url.group(1), int(url.group(2))
                started.set()
        started.set()

    def _owner_token(self) -> str:
        """Servers with accounts print a setup link, not an admin token: create the owner as a
        person would, then an API token with all of the owner's scopes."""

        def call(method: str, path: str, body: Any = None, bearer: str | None = None) -> Any:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            headers = {"Content-Type": "application/json"}
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            conn.request(method, path, orjson.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
            return orjson.loads(data)

        created = call("POST", "/v1/auth/setup", {"token": self.setup_token, **OWNER, "return_token": True})
        session = created["session_token"]
        scopes = call("GET", "/v1/me", bearer=session)["scopes"]
        return str(call("POST", "/v1/tokens", {"name": "bench", "scopes": scopes}, bearer=session)["secret"])

    def log_tail(self, lines: int = 30) -> str:
        if self._workdir is None:
            return ""
        path = Path(self._workdir.name) / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def pids(self) -> list[int]:
        """The server's process and its children (the workers of `--workers`)."""
        found = [self.pid]
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{self.pid}/task"):
                with open(f"/proc/{self.pid}/task/{task}/children") as handle:
                    found += [int(child) for child in handle.read().split()]
        return found

    def rss_kib(self) -> int:
        """VmRSS of the server's processes, KiB."""
        total = 0
        for pid in self.pids:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        if not total:
            raise RuntimeError("no VmRSS")
        return total

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server's processes (all their threads)."""
        ticks = os.sysconf("SC_CLK_TCK")
        user = system = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
                user, system = user + int(fields[11]) / ticks, system + int(fields[12]) / ticks
        return user, system

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads)."""
        return sum(self.cpu_split())

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(20)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The load generator's other processes (clients.SubscriberPool): their CPU is the client's, not
# "other processes'" that make a run be done again.
CLIENT_PIDS: set[int] = set()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds() -> float:
    """CPU seconds of the load generator: this process and its subscriber processes."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime + sum(process_cpu_seconds(pid) for pid in CLIENT_PIDS)


# --- a raw HTTP/1.1 client -------------------------------------------------------------------------


class HTTPError(Exception):
    pass


class HTTPConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; responses need Content-Length."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self._head = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\n".encode()
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0  # perf_counter() when the last request was handed to the socket

    @classmethod
    async def open(cls, host: str, port: int, token: str) -> HTTPConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(host, port, token), host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HTTPError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        start = head.find(b"\r\ncontent-length:")
        if start < 0 and head[9:12] in (b"204", b"304"):  # no body, and none announced
            del buffer[: end + 4]
            waiter.set_result((int(head[9:12]), b""))
            return
        if start < 0:
            waiter.set_exception(HTTPError("response without Content-Length: " + head[:200].decode()))
            return
        else:
            stop = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : stop if stop > 0 else None])
        if len(buffer) < end + 4 + length:
            return
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        waiter.set_result((int(head[9:12]), body))

    def request(self, method: str, path: str, body: Any = None) -> Awaitable[tuple[int, bytes]]:
        """Send a request (a JSON body when `body` is given); resolves to (status, body bytes)."""
        if self.transport is None:
            raise HTTPError("not connected")
        assert self._waiter is None or self._waiter.done(), "one request at a time"
        self._waiter = asyncio.get_running_loop().create_future()
        if body is None:
            data = b"%s %s HTTP/1.1\r\n%s\r\n" % (method.encode(), path.encode(), self._head)
        else:
            payload = orjson.dumps(body)
            data = b"%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                method.encode(),
                path.encode(),
                self._head,
                len(payload),
                payload,
            )
        self.sent_at = time.perf_counter()
        self.transport.write(data)
        return self._waiter

    async def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, raw = await self.request(method, path, body)
        if status != expect:
            raise HTTPError(f"{method} {path}: {status} {raw[:300]!r}")
        return orjson.loads(raw)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# --- whose lag it is --------------------------------------------------------------------------------


class LoopLagSampler:
    """How late this process's event loop runs a timer it asks for every `interval` s, from
    `start` to `end` (the loop's clock): when the load generator's loop is late, a latency it
    measures is partly its own, not the server's."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags_ms: list[float] = []

    async def run(self, start: float, end: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start - loop.time()))
        while (due := loop.time() + self.interval) < end:
            await asyncio.sleep(self.interval)
            self.lags_ms.append(max(0.0, loop.time() - due) * 1000)


LAG_METRIC = "spacechat_event_loop_lag_seconds"


_LAG_BUCKET = re.compile(rb"^" + LAG_METRIC.encode() + rb'_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$', re.M)


async def server_loop_lag(host: str, port: int, token: str) -> list[tuple[float, float]]:
    """The server's event-loop lag histogram from `/metrics` (sampled every 0.1 s, summed over its
    processes): (upper bound in seconds, samples at most that), cumulative, +Inf last. Read with
    a pattern: the load generator imports nothing of the server's for it."""
    conn = await HTTPConnection.open(host, port, token)
    try:
        status, body = await conn.request("GET", "/metrics")
    finally:
        conn.close()
    if status != 200:
        raise HTTPError(f"GET /metrics: {status}")
    buckets: dict[float, float] = {}
    for bound, value in _LAG_BUCKET.findall(body):
        buckets[float(bound)] = buckets.get(float(bound), 0.0) + float(value)
    return sorted(buckets.items())


def lag_percentile_ms(before: list[tuple[float, float]], after: list[tuple[float, float]], pct: float) -> float:
    """Of the samples taken between two readings of `server_loop_lag`, the upper bound (ms) of
    the bucket that holds the `pct` percentile (a bound, not a value: the buckets are coarse)."""
    counts = [(bound, total - dict(before).get(bound, 0.0)) for bound, total in after]
    if not counts or counts[-1][1] <= 0:
        return float("nan")
    wanted = counts[-1][1] * pct / 100
    return next(bound for bound, seen in counts if seen >= wanted) * 1000


async def general_channel(conn: HTTPConnection) -> str:
    channels = (await conn.json("GET", "/v1/channels"))["channels"]
    return str(next(c["id"] for c in channels if c["name"] == "general"))


async def new_thread(conn: HTTPConnection, channel_id: str, text: str = "benchmark thread") -> tuple[str, int]:
    """Open a thread in the channel; return its id and the root message's seq."""
    answer = await conn.json("POST", f"/v1/channels/{channel_id}/messages", {"text": text}, expect=201)
    return str(answer["thread"]["id"]), int(answer["message"]["seq"])


async def post_many(
    host: str, port: int, token: str, path: str, count: int, *, concurrency: int = 50, text: str = "x" * 200
) -> int:
    """Post `count` messages to `path` with `concurrency` connections; return the highest seq acked."""
    conns = [await HTTPConnection.open(host, port, token) for _ in range(concurrency)]
    remaining = count
    highest = 0

    async def worker(conn: HTTPConnection) -> None:
        nonlocal remaining, highest
        while remaining > 0:
            remaining -= 1
            answer = await conn.json("POST", path, {"text": f"{remaining} {text}"}, expect=201)
            highest = max(highest, int(answer["message"]["seq"]))

    try:
        await asyncio.gather(*(worker(conn) for conn in conns))
    finally:
        for conn in conns:
            conn.close()
    return highest


# --- a raw SSE subscriber -------------------------------------------------------------------------

READY = b"event: ready\n"
LAGGED = b"event: lagged\n"


class SSEStream(asyncio.Protocol):
    """`GET /v1/realtime/sse` on a raw socket. The base class checks the status line and resolves
    `ready` (with the time it arrived) on the `ready` control event; `chunk` sees every chunk of
    the body with its arrival time (chunked transfer framing included; SSE frames are never split
    by the server's writes but may be by TCP, so `self._tail` keeps the previous chunk's end)."""

    ACCEPTED = b"HTTP/1.1 200"  # the status line that opens the stream

    def __init__(self, host: str, port: int, token: str, *, last_event_id: int | None = None) -> None:
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id is not None else ""
        self._request = (
            f"GET /v1/realtime/sse HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n"
        ).encode()
        self.ready: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._tail = b""
        self._head: bytearray | None = bytearray()
        self.bytes_received = 0

    @classmethod
    async def open(cls: type[S], host: str, port: int, token: str, **kwargs: Any) -> S:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(host, port, token, **kwargs), host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.ready.done():
            self.ready.set_exception(HTTPError(f"stream closed before ready: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.received(data, time.perf_counter())

    def received(self, data: bytes, now: float) -> None:
        """`data` arrived at `now` (perf_counter's clock): the read's time, or the kernel's
        receive time when the reader has it (clients.StampedReader)."""
        self.bytes_received += len(data)
        if self._head is not None:  # the response head, which `chunk` never sees
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            self._head = None
            if not head.startswith(self.ACCEPTED):
                self.ready.set_exception(HTTPError(f"stream refused: {head[:300]!r} {data[:300]!r}"))
                self.close()
                return
            if not data:
                return
        if not self.ready.done() and READY in self._tail + data:
            self.ready.set_result(now)
        self.chunk(data, now)
        self._tail = data[-64:] if len(data) >= 64 else (self._tail + data)[-64:]  # reads may be tiny

    def chunk(self, data: bytes, now: float) -> None:
        """Override to look at every chunk (`self._tail` still holds the previous chunk's end)."""

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


S = TypeVar("S", bound=SSEStream)


async def open_many(
    factory: Callable[[], Coroutine[Any, Any, S]], count: int, *, concurrency: int = 64, timeout: float = 120
) -> list[S]:
    """Open `count` streams, `concurrency` at a time, each waited for until `ready`."""
    streams: list[S] = []
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            stream = await factory()
            await stream.ready
            streams.append(stream)

    async with asyncio.timeout(timeout):
        await asyncio.gather(*(one() for _ in range(count)))
    return streams


class ReadyCapture(SSEStream):
    """A stream that keeps everything up to and including the `ready` event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffer = bytearray()
        self.captured: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def chunk(self, data: bytes, now: float) -> None:
        if not self.captured.done():
            self.buffer += data
            # done once the chunk holding `ready` has ended (an SSE frame ends "\n\n", a chunk "\r\n")
            if self.ready.done() and self.buffer.endswith(b"\n\n\r\n"):
                self.captured.set_result(None)


def dechunk(raw: bytes) -> bytes:
    """Undo chunked transfer encoding (a partial last chunk is dropped)."""
    body = memoryview(raw)
    out = bytearray()
    while body:
        line_end = bytes(body[:20]).find(b"\r\n")
        if line_end < 0:
            break
        size = int(bytes(body[:line_end]).split(b";")[0], 16)
        if size == 0:
            break
        out += body[line_end + 2 : line_end + 2 + size]
        body = body[line_end + 2 + size + 2 :]
    return bytes(out)


@dataclass
class SSEFrame:
    event: str
    id: str | None
    data: str


def parse_frames(body: bytes) -> list[SSEFrame]:
    """SSE frames of a (dechunked) stream body."""
    frames = []
    for block in body.decode().split("\n\n"):
        event, ident, data = "message", None, []
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name == "event":
                event = value
            elif name == "id":
                ident = value
            elif name == "data":
                data.append(value)
        if data:
            frames.append(SSEFrame(event, ident, "\n".join(data)))
    return frames


def ready_payload(stream: ReadyCapture) -> dict[str, Any]:
    for frame in reversed(parse_frames(dechunk(bytes(stream.buffer)))):
        if frame.event == "ready":
            return dict(orjson.loads(frame.data))
    raise HTTPError("no ready event in the stream")


async def last_seq(host: str, port: int, token: str) -> int:
    """The server's newest seq: what a fresh live stream's `ready` says."""
    stream = await ReadyCapture.open(host, port, token)
    await stream.ready
    stream.close()
    return int(ready_payload(stream)["resume_after"])


# --- profiling -------------------------------------------------------------------------------------


class Profiler:
    """py-spy record on the server (raw collapsed stacks, per thread, non-blocking), stopped with SIGINT.

    By default py-spy samples every thread that is not idle (running, or waiting for the GIL);
    `gil=True` samples only the thread holding the GIL, which shows where the interpreter's time
    goes when the process is CPU bound."""

    def __init__(self, pid: int, output: Path, *, rate: int = 250, gil: bool = False) -> None:
        self.pid, self.output, self.rate, self.gil = pid, output, rate, gil
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        py_spy = Path(sys.executable).parent / "py-spy"
        command = str(py_spy) if py_spy.exists() else shutil.which("py-spy")
        if command is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                command,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                *(["--gil"] if self.gil else []),
                "-o",
                str(self.output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # let it attach before the measured phase
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if not self.output.exists():
            log(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
        else:
            log(f"profile written to {self.output}")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run the client on uvloop when it is installed (it is with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def elapsed_ms(start: float, end: float) -> float:
    return (end - start) * 1000


def add_profile_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--profile", type=Path, help=f"after the runs, profile {what} with py-spy, writing here")
    parser.add_argument("--profile-gil", action="store_true", help="profile only the thread holding the GIL")


def maybe_profile(server: Server, output: Path | None, *, gil: bool = False) -> contextlib.AbstractContextManager[Any]:
    """A Profiler on the server when `output` is given, else nothing."""
    return Profiler(server.pid, output, gil=gil) if output is not None else contextlib.nullcontext()


def add_client_options(parser: argparse.ArgumentParser, default_procs: int = 2) -> None:
    parser.add_argument(
        "--client-procs",
        type=int,
        default=default_procs,
        help=f"subscriber processes (default {default_procs}); 0: subscribers in this process, as before #16",
    )
    parser.add_argument("--small", action="store_true", help="a quick check that it works (figures mean little)")


def describe_clients(args: argparse.Namespace) -> str:
    """What the load generator was, for every table's title (#16)."""
    where = f"CPU {CLIENT_CPU}" if PINNABLE else "unpinned"
    if args.client_procs:
        return f"subscribers in {args.client_procs} processes, senders in another, all on {where}"
    return f"subscribers and senders in one process on {where}"


def begin(name: str, args: argparse.Namespace) -> None:
    """Pin the client, lift the open-files limit, and print what is being measured where."""
    global SERVER_WORKERS, SERVER_EVERY_CPU
    SERVER_WORKERS = getattr(args, "workers", 1)
    SERVER_EVERY_CPU = getattr(args, "server_every_cpu", False)
    pinning, files = pin_client(), raise_fd_limit()
    print(f"{name}: {machine_description()}; {pinning}; open files limit {files}")
    print(f"{name}: {describe_source(args.src)}; {time.strftime('%Y-%m-%d %H:%M')}")
    sys.stdout.flush()
