"""The first start: the organisation with its first team and channels, the agents' identities,
and the one-time link that creates the owner account (there is no default password, ever)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import AgentConfig, BootstrapConfig, ConfigError
from ..events import SYSTEM
from ..store import identity, tenancy
from ..store.db import Database, WriteTx


async def primary_org(db: Database, seed: BootstrapConfig) -> str:
    """The primary organisation's id, creating it (with its team and channels) on first start."""
    org = await tenancy.first_org(db)
    if org is not None:
        return str(org["id"])

    def create(tx: WriteTx) -> str:
        org = tenancy.create_org(tx, seed.org_name)
        team = tenancy.create_team(tx, org["id"], seed.team_name)
        for channel in seed.channels:
            tenancy.create_channel(
                tx,
                org_id=org["id"],
                team_id=team["id"],
                name=channel.name,
                actor=SYSTEM,
                category=channel.category,
                topic=channel.topic,
                private=channel.private,
            )
        return str(org["id"])

    return await db.write(create)


async def agent_orgs(db: Database, primary: str, agents: Sequence[AgentConfig]) -> dict[str, str]:
    """Each configured agent's organisation, from its `org` (a name or an id; default the
    primary organisation). A name that matches no organisation, or several, stops start-up."""
    orgs = await tenancy.list_orgs(db)
    resolved: dict[str, str] = {}
    for agent in agents:
        if not agent.org:
            resolved[agent.id] = primary
            continue
        matches = [org["id"] for org in orgs if agent.org in (org["id"], org["name"])]
        if not matches:
            raise ConfigError(
                f"agents: {agent.id}: no organisation named {agent.org!r}; create it (POST /v1/orgs) and start again"
            )
        if len(matches) > 1:
            raise ConfigError(f"agents: {agent.id}: several organisations are named {agent.org!r}; give its id")
        resolved[agent.id] = matches[0]
    return resolved


async def register_agents(
    db: Database, primary: str, orgs: Mapping[str, str], agents: Sequence[dict[str, Any]]
) -> None:
    """Each agent of the host acts under its own identity (kind `agent`) in its organisation, and
    is a member of the channels of that organisation it is bound to. An agent never moves between
    organisations: its identity, messages and usage stay where they were made."""

    def register(tx: WriteTx) -> None:
        for agent in agents:
            org_id = orgs.get(agent["id"], primary)
            existing = identity.user_row(tx, agent["id"])
            if existing is None:
                identity.create_user(
                    tx, org_id=org_id, kind="agent", name=agent["name"], role="agent", user_id=agent["id"], actor=SYSTEM
                )
            elif existing["org_id"] != org_id:
                raise ConfigError(
                    f"agents: {agent['id']}: this agent belongs to organisation {existing['org_id']}; an agent "
                    "cannot move to another organisation (give the new one another id)"
                )
            for name in agent.get("channels", []):
                channel = tenancy.channel_by_name(tx, org_id, name)
                if channel is not None:
                    identity.add_member(tx, channel, agent["id"], SYSTEM)

    await db.write(register)


async def setup_secret(db: Database, org_id: str) -> str | None:
    """While the organisation has no owner, a new one-time setup secret (the old ones stop
    working); None once it has one."""
    if await identity.any_owner(db, org_id):
        return None
    return await db.write(lambda tx: identity.create_setup_token(tx, org_id, instance_admin=True))
