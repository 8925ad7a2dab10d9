"""Where an agent lives: its home channel, the first channel it is bound to."""

from __future__ import annotations

from typing import Any

from ..hookspecs import HostAPI
from ..identity.permissions import Access


def home_channel(host: HostAPI | None, access: Access, org_id: str, agent_id: str) -> dict[str, Any] | None:
    for agent in host.agents() if host is not None else []:
        if agent["id"] == agent_id:
            for name in agent.get("channels", []):
                found = access.channel_named(name, org_id)
                if found is not None:
                    return found
    return None
