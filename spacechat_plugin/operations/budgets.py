"""Budgets per agent, organisation, team and person: a warning card at `warn_at` of the limit
(once per period), and with `hard_stop` new turns refused until the period ends.

A person's spend is what the turns their messages started cost (usage records carry the author
of the turn's first message); a team's is what was spent in its channels. Spacebot's own event
stream carries no token usage (its users once saw an idle process spend a month's budget
unnoticed); here every request is counted as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..agents.home import agent_org, home_channel
from ..cards.service import CardService
from ..config import BudgetConfig, Settings
from ..hookspecs import HostAPI
from ..identity.permissions import Access
from ..instance import Instance
from ..store import identity, tenancy
from ..store import usage as usage_store
from ..store.db import Database
from .incidents import Incidents


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


@dataclass(frozen=True)
class Scope:
    """One budget that applies: `by` (agent, org, team, person) and whose (`key`)."""

    by: str
    key: str
    budget: BudgetConfig

    @property
    def name(self) -> str:
        return f"{self.by}:{self.key}"


class Budgets:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        instance: Instance,
        access: Access,
        host: HostAPI | None,
        cards: CardService,
        incidents: Incidents,
    ) -> None:
        self.db, self.settings, self.instance, self.access, self.host = db, settings, instance, access, host
        self.cards, self.incidents = cards, incidents
        self._team_names: dict[str, str] = {}
        self._emails: dict[str, str] = {}

    async def _team_budget(self, team_id: str) -> BudgetConfig | None:
        teams = self.settings.budgets.teams
        if not teams:
            return None
        if team_id not in self._team_names:
            team = await tenancy.get_team(self.db, team_id)
            self._team_names[team_id] = team["name"] if team else ""
        return teams.get(team_id) or teams.get(self._team_names[team_id])

    async def _person_budget(self, user_id: str) -> BudgetConfig | None:
        budgets = self.settings.budgets
        if budgets.people and user_id not in self._emails:
            user = await identity.get_user(self.db, user_id)
            self._emails[user_id] = (user or {}).get("email") or ""
        return budgets.people.get(user_id) or budgets.people.get(self._emails.get(user_id, "")) or budgets.person

    async def scopes(self, agent_id: str, user_id: str | None = None, team_id: str | None = None) -> list[Scope]:
        budgets = self.settings.budgets
        found = []
        if agent_id in budgets.agents:
            found.append(Scope("agent", agent_id, budgets.agents[agent_id]))
        if budgets.org is not None:
            found.append(Scope("org", agent_org(self.instance, agent_id), budgets.org))
        if team_id and (team := await self._team_budget(team_id)) is not None:
            found.append(Scope("team", team_id, team))
        if user_id and (person := await self._person_budget(user_id)) is not None:
            found.append(Scope("person", user_id, person))
        return found

    async def budget_status(
        self, agent_id: str, user_id: str | None = None, team_id: str | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for scope in await self.scopes(agent_id, user_id, team_id):
            budget = scope.budget
            since = usage_store.ts(period_start(budget.period))
            spent, unpriced = await usage_store.spent_since(self.db, by=scope.by, key=scope.key, since=since)
            out.append(
                {
                    "scope": scope.name,
                    "period": budget.period,
                    "limit_usd": budget.limit_usd,
                    "spent_usd": round(spent, 6),
                    "unpriced_requests": unpriced,  # not in spent_usd: a budget cannot count what has no price
                    "warn_at": budget.warn_at,
                    "hard_stop": budget.hard_stop,
                    "stopped": budget.hard_stop and spent >= budget.limit_usd,
                    "resets_at": period_end_text(budget.period),
                }
            )
        return out

    async def check(self, agent_id: str, org_id: str, user_id: str | None, team_id: str | None) -> None:
        """After spending: warn once per period at the threshold; at the limit with a hard stop,
        open a budget incident (once per period)."""
        for status in await self.budget_status(agent_id, user_id, team_id):
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

    async def refusal(self, agent_id: str, user_id: str | None = None, team_id: str | None = None) -> str | None:
        """Why an agent may not start a turn for this person in this team now (a budget with a
        hard stop is spent), or None."""
        for status in await self.budget_status(agent_id, user_id, team_id):
            if status["stopped"]:
                whose = {"agent": "its", "org": "the organisation's", "team": "the team's", "person": "your"}[
                    status["scope"].split(":", 1)[0]
                ]
                return (
                    f"{agent_id} is paused: {whose} {status['period']} budget of ${status['limit_usd']:.2f} "
                    f"({status['scope']}) is spent. It resets at {status['resets_at']}."
                )
        return None
