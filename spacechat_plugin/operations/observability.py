"""What agents cost and how they run: usage with cost, turns with latency, errors with hints,
component health, and budgets with their warning cards and hard stops.

Spacebot's own event stream carries no token usage (its users once saw an idle process spend a
month's budget unnoticed); here every LLM request is recorded with its cost as it happens, and
a budget can warn, then stop an agent, before that happens.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from ..agents.home import agent_org, home_channel
from ..agents.replies import ReplyStreams
from ..cards.service import CardService
from ..config import BudgetConfig, Settings
from ..events import Actor, AgentTokenUsage, Event, SystemHealthChanged, now_rfc3339
from ..hookspecs import HostAPI, hookimpl
from ..identity.permissions import Access
from ..instance import Instance
from ..store import usage as usage_store
from ..store.db import Database, WriteTx
from .incidents import Incidents

log = logging.getLogger("spacechat.observability")


def period_start(period: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.replace(day=1) if period == "month" else start


def period_end_text(period: str, now: datetime | None = None) -> str:
    start = period_start(period, now)
    if period == "month":
        nxt = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    else:
        nxt = start + timedelta(days=1)
    return nxt.strftime("%Y-%m-%d %H:%M UTC")


class Observability:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        instance: Instance,
        access: Access,
        host: HostAPI | None,
        cards: CardService,
        replies: ReplyStreams,
        incidents: Incidents,
    ) -> None:
        self.db, self.settings, self.instance, self.access, self.host = db, settings, instance, access, host
        self.cards, self.replies, self.incidents = cards, replies, incidents

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
        cost = cost_usd if cost_usd is not None else usage_store.price(self.settings.pricing, model, counts)
        row = {
            "ts": now_rfc3339(),
            "org_id": org_id,
            "team_id": channel["team_id"] if channel else None,
            "channel_id": channel["id"] if channel else None,
            "thread_id": (thread_id or None) if channel else None,
            "agent_id": agent_id,
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
            await self.check_budgets(agent_id, org_id)

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

    # -- budgets ------------------------------------------------------------------------------

    def _budgets(self, agent_id: str) -> list[tuple[str, str, BudgetConfig]]:
        budgets = self.settings.budgets
        found = []
        if agent_id in budgets.agents:
            found.append((f"agent:{agent_id}", "agent", budgets.agents[agent_id]))
        if budgets.org is not None:
            found.append((f"org:{agent_org(self.instance, agent_id)}", "org", budgets.org))
        return found

    async def spent(self, where: str, budget: BudgetConfig, agent_id: str) -> float:
        since = usage_store.ts(period_start(budget.period))
        if where == "agent":
            return await usage_store.spent_since(self.db, agent_id=agent_id, org_id=None, since=since)
        return await usage_store.spent_since(
            self.db, agent_id=None, org_id=agent_org(self.instance, agent_id), since=since
        )

    async def budget_status(self, agent_id: str) -> list[dict[str, Any]]:
        out = []
        for key, where, budget in self._budgets(agent_id):
            spent = await self.spent(where, budget, agent_id)
            out.append(
                {
                    "scope": key,
                    "period": budget.period,
                    "limit_usd": budget.limit_usd,
                    "spent_usd": round(spent, 6),
                    "warn_at": budget.warn_at,
                    "hard_stop": budget.hard_stop,
                    "stopped": budget.hard_stop and spent >= budget.limit_usd,
                    "resets_at": period_end_text(budget.period),
                }
            )
        return out

    async def check_budgets(self, agent_id: str, org_id: str) -> None:
        """After spending: warn once per period at the threshold; at the limit with a hard stop,
        open a budget incident (once per period)."""
        for status in await self.budget_status(agent_id):
            period = usage_store.ts(period_start(status["period"]))
            if status["spent_usd"] >= status["warn_at"] * status["limit_usd"] and await self._first(
                status["scope"], period, "warned"
            ):
                await self._warn(agent_id, status)
            if status["stopped"] and await self._first(status["scope"], period, "stopped"):
                await self.incidents.open(
                    org_id=org_id,
                    kind="budget_stop",
                    source=f"budget:{status['scope']}:{period}",
                    title=f"{status['scope']} reached its {status['period']} budget; turns are paused",
                    details={
                        "error": f"spent ${status['spent_usd']:.2f} of ${status['limit_usd']:.2f}",
                        "hint": usage_store.hint_for("budget"),
                    },
                )

    async def _first(self, scope_key: str, period: str, kind: str) -> bool:
        """Record an alert; False when it was already made this period."""
        return await self.db.write(lambda tx: usage_store.first_alert(tx, scope_key, period, kind))

    async def _warn(self, agent_id: str, status: dict[str, Any]) -> None:
        org_id = agent_org(self.instance, agent_id)
        home = (
            home_channel(self.host, self.access, self.instance, agent_id)
            if status["scope"].startswith("agent:")
            else None
        )
        home = home or self.access.channel_named(self.settings.ops.ops_channel, org_id)
        if home is None:
            return
        share = status["spent_usd"] / status["limit_usd"]
        what = "stops new turns" if status["hard_stop"] else "is only a warning"
        await self.cards.post(
            home,
            f"Budget warning: {status['scope']} has spent {share:.0%} of its {status['period']} budget",
            blocks=[
                {
                    "type": "status",
                    "label": f"Budget: {share:.0%} spent",
                    "state": "warning",
                    "detail": f"${status['spent_usd']:.2f} of ${status['limit_usd']:.2f} this {status['period']}",
                },
                {
                    "type": "section",
                    "text": f"**{status['scope']}** has spent ${status['spent_usd']:.2f} of its "
                    f"${status['limit_usd']:.2f} {status['period']} budget. The limit {what}; it resets at "
                    f"{status['resets_at']}.",
                },
            ],
        )

    async def refusal(self, agent_id: str) -> str | None:
        """Why an agent may not start a turn now (a budget with a hard stop is spent), or None."""
        for status in await self.budget_status(agent_id):
            if status["stopped"]:
                return (
                    f"{agent_id} is paused: its {status['period']} budget of ${status['limit_usd']:.2f} "
                    f"({status['scope']}) is spent. It resets at {status['resets_at']}."
                )
        return None
