"""How a host calls hooks: every result awaited, one plugin's failure never stops a turn."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pluggy

from ..hookspecs import call_hook, first_hook

log = logging.getLogger("spacechat.host.hooks")


def report(name: str, impl: Any, error: BaseException) -> None:
    log.error("hook %s failed in %s", name, impl.plugin_name, exc_info=error)


class HookRunner:
    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    async def call(self, name: str, **kwargs: Any) -> list[Any]:
        """Every implementation, awaited in pluggy's order; a failing one is logged and skipped
        (a broken plugin must not break the agent)."""
        return await call_hook(self.pm, name, on_error=report, **kwargs)

    async def first(self, name: str, **kwargs: Any) -> Any:
        """A *firstresult* hook; a failing implementation is logged and skipped."""
        return await first_hook(self.pm, name, on_error=report, **kwargs)

    async def must(self, name: str, **kwargs: Any) -> list[Any]:
        """Like `call`, but a failure propagates (startup: a plugin that cannot start stops the host)."""
        return await call_hook(self.pm, name, **kwargs)

    async def inbound_text(self, *, agent_id: str, channel_id: str, thread_id: str, message: Mapping[str, Any]) -> str:
        """The text an agent reads for an inbound message: for recorded speech (`message["voice"]`),
        what `spacebot_transcribe_audio` returns (the transcript); otherwise the message's text."""
        text = str(message.get("text", ""))
        voice = message.get("voice")
        if not isinstance(voice, Mapping):
            return text
        transcript = await self.first(
            "spacebot_transcribe_audio",
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            message_id=message.get("id"),
            audio=voice,
        )
        return str(transcript) if transcript is not None else text
