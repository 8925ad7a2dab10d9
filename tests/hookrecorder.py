"""A plugin that implements every hookspec and records each call, for host tests."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from spacechat_plugin import hookspecs


def hook_names() -> list[str]:
    """The host's hooks (spacebot_*) and Spacechat's own hooks for hook plugins (spacechat_*)."""
    return sorted(name for name in dir(hookspecs) if name.startswith(("spacebot_", "spacechat_")))


class Recorder:
    """Records (hook name, kwargs). `answers[name]` may be a value or a callable(**kwargs)
    returning a value or an awaitable; used for firstresult hooks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        self.changed = asyncio.Event()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.of(name)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(name)

    def _record(self, name: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((name, kwargs))
        self.changed.set()
        answer = self.answers.get(name)
        return answer(**kwargs) if callable(answer) else answer


def _make_method(name: str) -> Callable[..., Any]:
    params = list(inspect.signature(getattr(hookspecs, name)).parameters)
    args = ", ".join(params)
    body = ", ".join(f"{p!r}: {p}" for p in params)
    namespace: dict[str, Any] = {}
    exec(f"def {name}(self, {args}):\n    return self._record({name!r}, {{{body}}})\n", namespace)
    recorder: Callable[..., Any] = hookspecs.hookimpl(namespace[name])
    return recorder


for _name in hook_names():
    setattr(Recorder, _name, _make_method(_name))
