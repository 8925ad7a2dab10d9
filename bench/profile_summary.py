"""Summarise a py-spy raw profile (`py-spy record --format raw --threads`) as text.

Prints, as shares of all samples (py-spy records only threads that are running or waiting for the
GIL, so an idle event loop is not sampled; with `--gil`, only the thread holding the GIL): samples
per thread, the top functions by self time (the leaf frame), by inclusive time (on the stack at
all), self time per package, and each sample's place in the server (GROUPS: the first group with a
frame on the sample's stack takes it).

py-spy loses the caller frames of a coroutine resumed by the C task step, so many stacks start at
a coroutine (`run_stream;...`), not at `main`; the groups match any frame, so they still sort them.

    python bench/profile_summary.py /tmp/fanout.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def function(frame: str) -> str:
    """`name (file)` without the line number, so one function is one row."""
    match = FRAME.match(frame)
    return f"{match['name']} ({match['file']})" if match else frame


def package(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    # py-spy shortens paths relative to sys.path: `asyncio/events.py`, `spacechat_plugin/realtime/bus.py`,
    # `selectors.py`
    if path.startswith("spacechat_plugin/"):
        return path
    return path.split("/")[0]


GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("bus: Bus.publish waking subscribers", ("Bus.publish",)),
    (
        "realtime: subscriber tasks (Subscription.next, run_stream, SSESink)",
        ("run_stream", "SSESink", "Subscription.next", "EventStreamResponse"),
    ),
    ("writer thread (group commit, post_message)", ("spacechat-writer",)),
    ("reader threads (aiosqlite)", ("_connection_worker_thread",)),
    (
        "request handling (uvicorn parsing, routing, middleware, auth, handlers)",
        ("run_asgi", "HttpToolsProtocol", "RequestIdMiddleware.__call__ (", "Router.", "_post ", "authenticate"),
    ),
    (
        "ASGI send chain and socket writes with no handler on the stack (mostly SSE frames)",
        ("sender (", "._send (", "send_with_id", "RequestResponseCycle.send", "Transport.write"),
    ),
    ("event loop (select, callbacks)", ("_run_once", "select (", "Handle._run", "_call_soon", "Runner.run")),
]


def group(frames: list[str]) -> str:
    stack = ";".join(frames)
    for name, patterns in GROUPS:
        if any(pattern in stack for pattern in patterns):
            return name
    return "other"


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarise(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(count for _, count in stacks)
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    per_thread: dict[str, Counter[str]] = {}
    groups: Counter[str] = Counter()
    for frames, count in stacks:
        groups[group(frames)] += count
        thread, code = (frames[0], frames[1:]) if frames[0].startswith("thread ") else ("", frames)
        name = thread.split(": ", 1)[-1] or "?"
        name = "reader threads (aiosqlite)" if "_connection_worker_thread" in name else name
        threads[name] += count
        if not code:
            continue
        self_time[function(code[-1])] += count
        per_thread.setdefault(name, Counter())[function(code[-1])] += count
        packages[package(code[-1])] += count
        for name in {function(frame) for frame in code}:
            inclusive[name] += count

    def rows(counter: Counter[str], limit: int) -> list[str]:
        return [f"  {count / total:6.1%}  {count:6d}  {name}" for name, count in counter.most_common(limit)]

    out = [f"{total} samples"]
    out += ["", "by thread:", *rows(threads, 10)]
    out += ["", "by part of the server:", *rows(groups, len(GROUPS) + 1)]
    out += ["", "self time (leaf frame):", *rows(self_time, top)]
    out += ["", "inclusive time (anywhere on the stack):", *rows(inclusive, top)]
    out += ["", "self time by package / module:", *rows(packages, top)]
    for name, _ in threads.most_common(3):
        out += ["", f"self time in {name}:", *rows(per_thread.get(name, Counter()), 12)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(load(args.profile), args.top))


if __name__ == "__main__":
    main()
