"""Counters inside a `spacechat serve` started by `bench/anatomy.py` (never imported otherwise).

Python imports `sitecustomize` at start-up from the first directory on its path that has one;
anatomy.py puts this directory first on the server's PYTHONPATH and names an output file in
BENCH_PROBE_OUTPUT. Without that variable this module does nothing.

What it counts, between SIGUSR1 (start) and SIGUSR2 (stop and write the JSON file):

- every statement the store's writing connection runs (`store.sqlite.connect` without
  `readonly`): count, wall time and the calling thread's CPU time, by thread and SQL text;
- `Bus._serve`, the fan-out's loop: calls, the main thread's CPU time in it and how many
  subscribers each call walked.

The wrappers cost ~1-2 µs a statement and one clock read per publish; the figures they give are
the statements' and the loop's own.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

OUTPUT = os.environ.get("BENCH_PROBE_OUTPUT")


def _install(output: str) -> None:
    from spacechat_plugin.realtime import bus as bus_module
    from spacechat_plugin.store import sqlite

    recording = [False]
    statements: dict[tuple[str, str], list[float]] = {}  # (thread, sql) -> [count, wall, cpu]
    serve = {"calls": 0, "cpu_s": 0.0, "subscribers": 0}

    def note(sql: str, wall: float, cpu: float) -> None:
        key = (threading.current_thread().name, " ".join(sql.split())[:80])
        entry = statements.setdefault(key, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu

    class Timed:
        """The connection, with `execute` and `executemany` timed."""

        def __init__(self, conn: Any) -> None:
            object.__setattr__(self, "_conn", conn)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._conn, name)

        def __setattr__(self, name: str, value: Any) -> None:
            setattr(self._conn, name, value)

        def execute(self, sql: str, params: Any = ()) -> Any:
            if not recording[0]:
                return self._conn.execute(sql, params)
            wall, cpu = time.perf_counter(), time.thread_time()
            cursor = self._conn.execute(sql, params)
            note(sql, time.perf_counter() - wall, time.thread_time() - cpu)
            return cursor

        def executemany(self, sql: str, rows: Any) -> Any:
            if not recording[0]:
                return self._conn.executemany(sql, rows)
            wall, cpu = time.perf_counter(), time.thread_time()
            cursor = self._conn.executemany(sql, rows)
            note("(many) " + sql, time.perf_counter() - wall, time.thread_time() - cpu)
            return cursor

    connect = sqlite.connect

    def timed_connect(path: str, **options: Any) -> Any:
        conn = connect(path, **options)
        return conn if options.get("readonly") else Timed(conn)

    sqlite.connect = timed_connect

    original_serve = bus_module.Bus._serve

    def timed_serve(self: Any, subscriptions: Any) -> None:
        if not recording[0]:
            original_serve(self, subscriptions)
            return
        cpu = time.thread_time()
        original_serve(self, subscriptions)
        serve["cpu_s"] += time.thread_time() - cpu
        serve["calls"] += 1
        serve["subscribers"] += self.subscriber_count

    bus_module.Bus._serve = timed_serve  # type: ignore[method-assign]

    def start(*_: Any) -> None:
        statements.clear()
        serve.update(calls=0, cpu_s=0.0, subscribers=0)
        recording[0] = True

    def stop(*_: Any) -> None:
        recording[0] = False
        rows = [
            {"thread": thread, "sql": sql, "count": int(count), "wall_s": wall, "cpu_s": cpu}
            for (thread, sql), (count, wall, cpu) in statements.items()
        ]
        partial = f"{output}.partial"
        with open(partial, "w") as file:
            json.dump({"statements": rows, "serve": serve}, file)
        os.replace(partial, output)  # whole, or not there at all

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


if OUTPUT:
    _install(OUTPUT)
