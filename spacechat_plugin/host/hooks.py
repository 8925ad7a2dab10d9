"""How a host calls hooks: every result awaited, one plugin's failure never stops a turn."""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from ..hookspecs import await_me_maybe

log = logging.getLogger("spacechat.host.hooks")


def _implementations(pm: pluggy.PluginManager, name: str) -> list[Any]:
    """Implementations in the order pluggy would call them (wrappers are not used here)."""
    caller = getattr(pm.hook, name)
    return [impl for impl in reversed(caller.get_hookimpls()) if not (impl.hookwrapper or impl.wrapper)]


class HookRunner:
    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    async def call(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation and await each result, in pluggy's order. A failing
        implementation is logged and skipped (a broken plugin must not break the agent)."""
        out = []
        for impl in _implementations(self.pm, name):
            try:
                result = await await_me_maybe(impl.function(**{arg: kwargs[arg] for arg in impl.argnames}))
            except Exception:
                log.exception("hook %s failed in %s", name, impl.plugin_name)
                continue
            if result is not None:
                out.append(result)
        return out

    async def first(self, name: str, **kwargs: Any) -> Any:
        """A *firstresult* hook: the first implementation whose awaited result is not None.

        pluggy's own firstresult stops at the first non-None return, and a coroutine object is
        never None, so the host walks the implementations itself and awaits each in turn.
        """
        for impl in _implementations(self.pm, name):
            try:
                result = await await_me_maybe(impl.function(**{arg: kwargs[arg] for arg in impl.argnames}))
            except Exception:
                log.exception("hook %s failed in %s", name, impl.plugin_name)
                continue
            if result is not None:
                return result
        return None

    async def must(self, name: str, **kwargs: Any) -> list[Any]:
        """Like `call`, but a failure propagates (startup: a plugin that cannot start stops the host)."""
        return [
            await await_me_maybe(impl.function(**{arg: kwargs[arg] for arg in impl.argnames}))
            for impl in _implementations(self.pm, name)
        ]
