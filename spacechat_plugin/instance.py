"""What this running instance is: its primary organisation, where people reach it, since when.

Filled in by the composition root as start-up learns it (the organisation after bootstrap, the
address after the server bound); read by the services and routes that build links or default
to the primary organisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import now_rfc3339


@dataclass
class Instance:
    configured_url: str
    public_url: str | None = None
    org_id: str = ""
    bound_url: str | None = None
    started_at: str = field(default_factory=now_rfc3339)
    # Each configured agent's organisation (agents/home.py: an agent not listed is the primary
    # organisation's), resolved at start-up.
    agent_orgs: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """Where people reach us: `public_url` when set, else the address the server bound."""
        return self.public_url or self.bound_url or self.configured_url
