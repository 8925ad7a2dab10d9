"""Every permission decision, in one place.

Roles grant scopes (docs/permissions.md has the table); API tokens carry explicit scopes, cut
down to what their owner's role still grants. A route asks `check(principal, action, resource,
channel=...)`; nothing else decides who may do what:

- a resource of another organisation, or in a channel the principal may not read (a private
  channel it is not in; for a guest, any channel it was not added to), answers 404: for this
  actor it does not exist;
- a known resource without the scope answers 403.

Realtime uses the same rule per event (`visible`), live and on replay alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, Forbidden, NotFound
from ..events import Actor

ROLES: tuple[str, ...] = ("owner", "admin", "operator", "member", "guest", "agent")

# Scopes: the vocabulary of actions.
SCOPES: tuple[str, ...] = (
    "channels:read",
    "channels:join",
    "channels:manage",
    "messages:read",
    "messages:write",
    "files:write",
    "realtime:subscribe",
    "agents:read",
    "members:read",
    "members:manage",
    "tokens:create",
    "diagnostics:read",
    "ops:retry",
    "ops:restart",
    "ops:reconnect",
    "ops:recover",
    "memory:review",
    "audit:read",
    "org:admin",
    "tasks:read",
    "tasks:write",
    "tasks:approve",
    "incidents:read",
    "incidents:manage",
)

_EVERYONE = {"channels:read", "messages:read", "messages:write", "files:write", "realtime:subscribe", "agents:read"}
_MEMBER = _EVERYONE | {"channels:join", "members:read", "tokens:create", "tasks:read", "tasks:write", "incidents:read"}
_OPERATOR = _MEMBER | {
    "diagnostics:read",
    "ops:retry",
    "ops:restart",
    "ops:reconnect",
    "tasks:approve",
    "incidents:manage",
}
_ADMIN = _OPERATOR | {"channels:manage", "members:manage", "ops:recover", "memory:review", "audit:read"}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset(_ADMIN | {"org:admin"}),
    "admin": frozenset(_ADMIN),
    "operator": frozenset(_OPERATOR),
    "member": frozenset(_MEMBER),
    # Guests see the directory (names and roles) so conversations make sense, as in Slack.
    "guest": frozenset(_EVERYONE | {"members:read"}),
    "agent": frozenset(_EVERYONE | {"members:read", "tasks:read", "tasks:write"}),
}

# Who may give which role: an owner any; an admin up to admin; nobody else.
ASSIGNABLE: dict[str, frozenset[str]] = {
    "owner": frozenset(ROLES) - {"agent"},
    "admin": frozenset({"admin", "operator", "member", "guest"}),
}


def check_role_change(principal: Principal, user: Mapping[str, Any], role: str) -> None:
    """Who may give whom which role: only people change roles (bots and agents keep theirs), and
    only between roles the caller may assign (an admin cannot touch an owner)."""
    if user["kind"] != "human":
        raise BadRequest("bots and agents keep the agent role", code="not_a_person")
    allowed = ASSIGNABLE.get(principal.role, frozenset())
    if role not in allowed or user["role"] not in allowed | {role}:
        article = "an" if principal.role[0] in "aeiou" else "a"
        raise Forbidden(
            f"{article} {principal.role} cannot make a {user['role']} into a {role}", code="role_not_assignable"
        )


def check_invitable(principal: Principal, role: str) -> None:
    if role not in ASSIGNABLE.get(principal.role, frozenset()):
        raise Forbidden(f"you cannot invite someone as {role}", code="role_not_assignable")


def check_deactivation(principal: Principal, user: Mapping[str, Any]) -> None:
    if user["id"] == principal.user_id:
        raise BadRequest("you cannot deactivate yourself", code="cannot_deactivate_self")
    if user["role"] == "owner" and principal.role != "owner":
        raise Forbidden("only an owner can deactivate an owner", code="role_not_assignable")


# Events that need a scope to be seen, besides being in a channel one may read (by type prefix).
EVENT_SCOPES: tuple[tuple[str, str], ...] = (
    ("system.", "diagnostics:read"),
    ("task.", "tasks:read"),
    ("incident.", "incidents:read"),
    # Candidates and memories carry what people said about people: reviewers see them live.
    ("memory.", "memory:review"),
)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the actor, its organisation, role and scopes, and the channels it is in.

    `channels` is the live membership set kept by `Access`, so a long-lived stream sees
    membership changes as they happen.
    """

    actor: Actor
    org_id: str
    scopes: frozenset[str]
    role: str = "member"
    name: str = ""
    credential: str = "session"  # session | token | host
    credential_id: str | None = None
    instance_admin: bool = False
    channels: Set[str] = field(default_factory=frozenset)

    @property
    def user_id(self) -> str:
        return self.actor.id or ""


def can_read_channel(principal: Principal, channel: Mapping[str, Any]) -> bool:
    if channel.get("org_id") != principal.org_id:
        return False
    if channel["id"] in principal.channels:
        return True
    return not channel.get("private") and principal.role != "guest"


def check(
    principal: Principal,
    action: str,
    resource: Mapping[str, Any] | None = None,
    *,
    channel: Mapping[str, Any] | None = None,
) -> None:
    """Allow, or raise NotFound / Forbidden.

    :param action: a scope from SCOPES.
    :param resource: the thing acted on (anything with an `org_id`), or None for the
        principal's own organisation.
    :param channel: the channel the resource lives in (or is), when it lives in one.
    """
    assert action in SCOPES, f"unknown action {action!r}"
    if resource is not None and resource.get("org_id") != principal.org_id:
        raise NotFound("no such resource")
    if channel is not None and not can_read_channel(principal, channel):
        raise NotFound("no such resource")
    if action not in principal.scopes:
        raise Forbidden(f"this needs the {action} permission", details={"scope": action})


# Actions anyone may attempt without signing in (each route that allows it says so).
PUBLIC_ACTIONS = frozenset({"auth:setup", "auth:login", "auth:invitation", "meta:read"})


def public(action: str) -> None:
    """The permission check of a route that needs no sign-in (setup, login, invitations, the
    OpenAPI document): there is nobody to check, but the route still declares itself here."""
    assert action in PUBLIC_ACTIONS, f"{action!r} is not a public action"


def may(principal: Principal, action: str) -> bool:
    return action in principal.scopes


class Access:
    """Channel privacy and memberships, cached in memory and kept current at every commit.

    `version` moves on every change, so per-stream caches of "may this subscriber read channel
    X" stay right without being rebuilt for every event.
    """

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}
        self.version = 0

    def channel_named(self, name: str, org_id: str) -> dict[str, Any] | None:
        return next((c for c in self.channels.values() if c["name"] == name and c["org_id"] == org_id), None)

    def apply(self, events: Iterable[Any]) -> None:
        """After each commit, before fan-out: keep the caches current, so every event is
        filtered by the memberships that hold after it."""
        for event in events:
            kind = event.event_type
            if kind in ("channel.created", "channel.updated"):
                self.channel_changed(event.payload.channel)
            elif kind == "member.added" and event.channel_id:
                self.joined(event.payload.user_id, event.channel_id)
            elif kind == "member.removed" and event.channel_id:
                self.left(event.payload.user_id, event.channel_id)

    def load(self, channels: list[dict[str, Any]], memberships: list[tuple[str, str]]) -> None:
        self.channels = {channel["id"]: channel for channel in channels}
        self._members = {}
        for channel_id, user_id in memberships:
            self._members.setdefault(user_id, set()).add(channel_id)
        self.version += 1

    def memberships(self, user_id: str) -> set[str]:
        """The live set of channel ids a user is a member of."""
        return self._members.setdefault(user_id, set())

    def channel_changed(self, channel: dict[str, Any]) -> None:
        self.channels[channel["id"]] = channel
        self.version += 1

    def joined(self, user_id: str, channel_id: str) -> None:
        self.memberships(user_id).add(channel_id)
        self.version += 1

    def left(self, user_id: str, channel_id: str) -> None:
        self.memberships(user_id).discard(channel_id)
        self.version += 1

    def visibility(self, principal: Principal) -> Callable[[Any], bool]:
        """Whether an event (anything with org_id, channel_id and event_type) may reach this
        principal's stream: its organisation's, allowed by type (EVENT_SCOPES), in a channel it may
        read. A closure that remembers its answers per event type and per channel (until `version`
        moves), since the check runs for every event and every subscriber."""
        by_type: dict[str, bool] = {}
        by_channel: dict[str, bool] = {}
        seen = [self.version]
        org_id = principal.org_id

        def visible(item: Any) -> bool:
            if item.org_id != org_id:
                return False
            allowed = by_type.get(item.event_type)
            if allowed is None:
                allowed = by_type[item.event_type] = type_allowed(principal, item.event_type)
            if not allowed:
                return False
            channel_id = item.channel_id
            if channel_id is None:
                return True
            if seen[0] != self.version:
                by_channel.clear()
                seen[0] = self.version
            readable = by_channel.get(channel_id)
            if readable is None:
                channel = self.channels.get(channel_id)
                readable = by_channel[channel_id] = channel is not None and can_read_channel(principal, channel)
            return readable

        return visible


def event_class(event_type: str) -> str:
    """An event type's visibility class: the EVENT_SCOPES prefix it falls under, or "" (events of
    one organisation, channel and class are visible to the same subscribers)."""
    for prefix, _ in EVENT_SCOPES:
        if event_type.startswith(prefix):
            return prefix
    return ""


def type_allowed(principal: Principal, event_type: str) -> bool:
    for prefix, needed in EVENT_SCOPES:
        if event_type.startswith(prefix) and needed not in principal.scopes:
            return False
    return True
