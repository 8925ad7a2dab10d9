"""Handing a person's message to the agents that should hear it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..cards.service import CardService
from ..hookspecs import HostAPI
from ..identity.permissions import Access
from ..instance import Instance
from .home import org_agents


class Refusals(Protocol):
    async def refusal(self, agent_id: str, user_id: str | None = None, team_id: str | None = None) -> str | None: ...


class Delivery:
    def __init__(
        self,
        host: HostAPI | None,
        access: Access,
        cards: CardService,
        budgets: Refusals,
        instance: Instance,
        runs_agents: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host, self.access, self.cards, self.budgets = host, access, cards, budgets
        self.instance = instance
        # With several gateways only the one holding the agents' lease hands messages to them
        # (issue 17: agents run in one process at a time).
        self.runs_agents = runs_agents

    async def deliver(
        self, channel: dict[str, Any], thread_id: str, message: dict[str, Any], named: list[str]
    ) -> list[str]:
        """Hand a person's message to the host. Only the agents of the channel's organisation hear
        it (another organisation's agent bound to a channel of the same name, or mentioned by its
        id, does not: issue 10); an agent hears a private channel only when it is a member; an
        agent paused by a budget is skipped, and the thread is told why."""
        if self.host is None or not self.runs_agents():
            return []
        own = {agent["id"] for agent in org_agents(self.host, self.instance, channel["org_id"])}
        skip = [agent["id"] for agent in self.host.agents() if agent["id"] not in own]
        if channel.get("kind") == "dm":
            # An agent in a direct conversation answers every message, as in its own channel.
            named = [*named, *(a["id"] for a in self.host.agents() if a["id"] in own and a["id"] not in named)]
        mentions = [
            m for m in named if m in own and (not channel["private"] or channel["id"] in self.access.memberships(m))
        ]
        takers = [
            a["id"]
            for a in self.host.agents()
            if a["id"] in own and (channel["name"] in a.get("channels", []) or a["id"] in mentions)
        ]
        author = message.get("author") or {}
        person = author.get("id") if author.get("kind") == "user" else None
        for agent_id in takers:
            refusal = await self.budgets.refusal(agent_id, person, channel.get("team_id"))
            if refusal is not None:
                skip.append(agent_id)
                await self.cards.post(
                    channel,
                    refusal,
                    thread_id=thread_id,
                    blocks=[
                        {
                            "type": "status",
                            "label": f"{agent_id} is paused",
                            "state": "warning",
                            "detail": refusal[:300],
                        }
                    ],
                )
        return await self.host.deliver_message(
            channel=channel, thread_id=thread_id, message=message, mentions=mentions, skip=skip
        )
