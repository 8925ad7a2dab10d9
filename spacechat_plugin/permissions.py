"""Every permission decision, in one place.

A route asks `check(principal, action, resource)`; nothing else decides who may do what.
A resource of another organisation answers 404 (it does not exist for this actor); a known
resource the actor lacks the scope for answers 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import Forbidden, NotFound
from .events import Actor

# Scopes: the vocabulary of actions (docs/permissions.md has the table by role).
SCOPES: tuple[str, ...] = (
    "channels:read",
    "channels:manage",
    "messages:read",
    "messages:write",
    "files:write",
    "realtime:subscribe",
    "agents:read",
    "diagnostics:read",
    "ops:retry",
    "ops:restart",
    "ops:reconnect",
    "ops:recover",
    "memory:review",
    "audit:read",
    "members:manage",
    "org:admin",
)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the actor, its organisation, and the scopes it holds."""

    actor: Actor
    org_id: str
    scopes: frozenset[str]
    name: str = ""
    role: str = "member"
    credential_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def check(principal: Principal, action: str, resource: Mapping[str, Any] | None = None) -> None:
    """Allow, or raise NotFound / Forbidden.

    :param action: a scope from SCOPES.
    :param resource: the thing acted on (anything with an `org_id`), or None for the
        principal's own organisation.
    """
    assert action in SCOPES, f"unknown action {action!r}"
    if resource is not None and resource.get("org_id") != principal.org_id:
        raise NotFound("no such resource")
    if action not in principal.scopes:
        raise Forbidden(f"this needs the {action} permission", details={"scope": action})


def visible_to(principal: Principal, org_id: str | None, channel_id: str | None) -> bool:
    """Whether an event scoped to (org, channel) may reach this principal's realtime stream."""
    return org_id == principal.org_id and "realtime:subscribe" in principal.scopes
