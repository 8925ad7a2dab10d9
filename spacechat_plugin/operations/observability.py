"""What agents cost and how they run: usage with cost (priced by operations/pricing.py), turns
with latency, errors with hints, component health; spending is checked against the budgets
(operations/budgets.py).

Spacebot's own event stream carries no token usage (its users once saw an idle process spend a
month's budget unnoticed); here every LLM request is recorded with its cost as it happens, and
a budget can warn, then stop an agent, before that happens.
"""

from __future__ import annotations

import logging

from ..agents.home import agent_org
from ..agents.replies import ReplyStreams
from ..config import Settings
from ..events import Actor, AgentTokenUsage, Event, SystemHealthChanged, now_rfc3339
from ..hookspecs import hookimpl
from ..identity.permissions import Access
from ..instance import Instance
from ..store import usage as usage_store
from ..store.db import Database, WriteTx
from .budgets import Budgets
from .incidents import Incidents
from .pricing import PriceTable

log = logging.getLogger("spacechat.observability")


class Observability:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        instance: Instance,
        access: Access,
        replies: ReplyStreams,
        incidents: Incidents,
        budgets: Budgets,
    ) -> None:
        self.db, self.settings, self.instance, self.access = db, settings, instance, access
        self.replies, self.incidents, self.budgets = replies, incidents, budgets
        self.prices = PriceTable(settings.prices, settings.pricing)

    # -- the hooks this service implements (registered as a plugin by the composition root) --

    @hookimpl
    async def spacebot_llm_usage(
        self,
        agent_id: str,
        channel_id: str | None,
        thread_id: str | None,
        turn_id: str | None,
        process_type: str,
        model: str,
        provider: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
        cost_usd: float | None,
    ) -> None:
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
        }
        await self.usage(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            turn_id=turn_id,
            process_type=process_type,
            model=model,
            provider=provider,
            counts=counts,
            cost_usd=cost_usd,
        )

    @hookimpl
    async def spacebot_health_changed(self, component: str, status: str, detail: str | None) -> None:
        await self.health(component=component, status=status, detail=detail)

    @hookimpl
    async def spacebot_connector_status(self, connector: str, status: str, detail: str | None) -> None:
        health = {"connected": "ok", "disconnected": "down", "error": "down"}.get(status, "degraded")
        await self.health(component=f"connector:{connector}", status=health, detail=detail)

    # -- usage --------------------------------------------------------------------------------

    async def usage(
        self,
        *,
        agent_id: str,
        channel_id: str | None,
        thread_id: str | None,
        turn_id: str | None,
        process_type: str,
        model: str,
        provider: str,
        counts: dict[str, int],
        cost_usd: float | None,
    ) -> None:
        channel = self.access.channels.get(channel_id) if channel_id else None
        org_id = channel["org_id"] if channel else agent_org(self.instance, agent_id)
        at = now_rfc3339()
        cost = cost_usd if cost_usd is not None else self.prices.cost(model, at[:10], counts)
        user_id = self.replies.user_for_turn(turn_id) if turn_id else None
        row = {
            "ts": at,
            "org_id": org_id,
            "team_id": channel["team_id"] if channel else None,
            "channel_id": channel["id"] if channel else None,
            "thread_id": (thread_id or None) if channel else None,
            "agent_id": agent_id,
            "user_id": user_id,
            "turn_id": turn_id,
            "process_type": process_type,
            "model": model,
            "provider": provider,
            **counts,
            "cost_usd": cost,
        }
        payload = AgentTokenUsage(
            agent_id=agent_id,
            model=model,
            provider=provider,
            cost_usd=cost,
            turn_id=turn_id,
            message_id=self.replies.message_for_turn(turn_id) if turn_id else None,
            **counts,
        )

        def write(tx: WriteTx) -> None:
            usage_store.record(tx, row)
            tx.emit(
                Event(
                    payload,
                    actor=Actor("agent", agent_id),
                    org_id=org_id,
                    team_id=channel["team_id"] if channel else None,
                    channel_id=channel["id"] if channel else None,
                    thread_id=thread_id if channel else None,
                )
            )

        await self.db.write(write)
        if cost:
            await self.budgets.check(agent_id, org_id, user_id, channel["team_id"] if channel else None)

    # -- health and errors --------------------------------------------------------------------

    async def health(self, *, component: str, status: str, detail: str | None) -> None:
        org_id = self.instance.org_id
        at = now_rfc3339()

        def write(tx: WriteTx) -> bool:
            changed = usage_store.set_health(tx, component, status, detail, at)
            if changed:
                tx.emit(Event(SystemHealthChanged(component=component, status=status, detail=detail), org_id=org_id))
                if status != "ok":
                    usage_store.error(
                        tx, org_id=org_id, source=component.split(":")[0], message=detail or status, at=at
                    )
            return changed

        if not await self.db.write(write):
            return
        if component.startswith(("provider:", "connector:")):
            if status == "down":
                await self.incidents.open(
                    org_id=org_id,
                    kind="provider_outage",
                    source=component,
                    severity="critical",
                    title=f"{component} is down",
                    details={"error": detail, "hint": usage_store.hint_for(detail or "")},
                )
            elif status == "ok":
                await self.incidents.resolve_source(org_id, component, "it is back up")
