"""Where an agent lives: its organisation, and its home channel there (the first it is bound to).

An agent belongs to one organisation (`org` in its config, else the first one): its channels,
status, queue, usage and operations exist only inside it, and from any other organisation it is
404, as any other tenant's resource (issue 10).
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import HostAPI
from ..identity.permissions import Access
from ..instance import Instance


def agent_org(instance: Instance, agent_id: str) -> str:
    """The organisation an agent belongs to (the primary one unless configured otherwise)."""
    return instance.agent_orgs.get(agent_id, instance.org_id)


def org_agents(host: HostAPI | None, instance: Instance, org_id: str | None) -> list[dict[str, Any]]:
    """The host's agents of one organisation (every agent when `org_id` is None: the instance's
    view), each with its `org_id`."""
    agents = [{**agent, "org_id": agent_org(instance, agent["id"])} for agent in (host.agents() if host else [])]
    return [agent for agent in agents if org_id is None or agent["org_id"] == org_id]


def find_agent(host: HostAPI | None, instance: Instance, org_id: str, agent_id: str) -> dict[str, Any] | None:
    """An agent of this organisation, or None (another organisation's agent does not exist here)."""
    return next((agent for agent in org_agents(host, instance, org_id) if agent["id"] == agent_id), None)


def org_status(host: HostAPI | None, instance: Instance, org_id: str | None) -> dict[str, Any] | None:
    """The host's live status (queues, running turns, workers) cut to one organisation's agents."""
    if host is None:
        return None
    status = host.status()
    return {
        **status,
        "agents": [a for a in status["agents"] if org_id is None or agent_org(instance, a["id"]) == org_id],
    }


def provider_orgs(host: HostAPI | None, instance: Instance, provider: str) -> set[str]:
    """The organisations whose agents use a model provider (more than one: it is shared)."""
    return {agent["org_id"] for agent in org_agents(host, instance, None) if agent.get("provider") == provider}


def home_channel(host: HostAPI | None, access: Access, instance: Instance, agent_id: str) -> dict[str, Any] | None:
    """An agent's home channel: the first channel of its organisation it is bound to."""
    org_id = agent_org(instance, agent_id)
    for agent in host.agents() if host is not None else []:
        if agent["id"] == agent_id:
            for name in agent.get("channels", []):
                found = access.channel_named(name, org_id)
                if found is not None:
                    return found
    return None
