"""Handing a person's message to the agents that should hear it."""

from __future__ import annotations

from typing import Any, Protocol

from ..cards.service import CardService
from ..hookspecs import HostAPI
from ..identity.permissions import Access


class Refusals(Protocol):
    async def refusal(self, agent_id: str, user_id: str | None = None, team_id: str | None = None) -> str | None: ...


class Delivery:
    def __init__(self, host: HostAPI | None, access: Access, cards: CardService, budgets: Refusals) -> None:
        self.host, self.access, self.cards, self.budgets = host, access, cards, budgets

    async def deliver(
        self, channel: dict[str, Any], thread_id: str, message: dict[str, Any], named: list[str]
    ) -> list[str]:
        """Hand a person's message to the host. An agent hears a private channel only when it is a
        member; an agent paused by a budget is skipped, and the thread is told why."""
        if self.host is None:
            return []
        mentions = [m for m in named if not channel["private"] or channel["id"] in self.access.memberships(m)]
        takers = [
            a["id"] for a in self.host.agents() if channel["name"] in a.get("channels", []) or a["id"] in mentions
        ]
        skip = []
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
