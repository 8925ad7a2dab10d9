"""Every permission decision, in one place.

Roles grant scopes (docs/permissions.md has the table); API tokens carry explicit scopes, cut
down to what their owner's role still grants. A route asks `check(principal, action, resource,
channel=...)`; nothing else decides who may do what:

- a resource of another organisation, or in a channel the principal may not read (a private
  channel it is not in; for a guest, any channel it was not added to), answers 404: for this
  actor it does not exist;
- a known resource without the scope answers 403.

Realtime uses the same rules per event (`Access.visibility`), live and on replay alike: the
organisation and channel as above, and the scope of the REST read that shows the same thing
(`EVENT_READS`, resolved against the route table).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from types import MappingProxyType
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
    "messages:moderate",
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
    "instance:read",
    "instance:operate",
    "approvals:manage",
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
# Moderators delete other people's messages (Slack and Zulip give that to admins).
_ADMIN = _OPERATOR | {
    "channels:manage",
    "members:manage",
    "messages:moderate",
    "ops:recover",
    "memory:review",
    "audit:read",
    "approvals:manage",
}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset(_ADMIN | {"org:admin"}),
    "admin": frozenset(_ADMIN),
    "operator": frozenset(_OPERATOR),
    "member": frozenset(_MEMBER),
    # Guests see the directory (names and roles) so conversations make sense, as in Slack.
    "guest": frozenset(_EVERYONE | {"members:read"}),
    "agent": frozenset(_EVERYONE | {"members:read", "tasks:read", "tasks:write"}),
}

# The instance role: what no organisation's role grants, held by the instance's operators (the
# first owner, and whoever they grant it with `spacechat instance grant`): instance-wide figures
# (every organisation's agents, the event log, the realtime gateway) and instance-wide operations
# (recover the instance, reconnect a provider several organisations share). Issue 10.
INSTANCE_SCOPES: frozenset[str] = frozenset({"instance:read", "instance:operate"})


@functools.cache  # one set per (role, instance role), shared by every principal (#16)
def granted_scopes(role: str, instance_operator: bool) -> frozenset[str]:
    """What a person's role grants, and the instance role's scopes when they hold it."""
    return ROLE_SCOPES[role] | INSTANCE_SCOPES if instance_operator else ROLE_SCOPES[role]


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


# What an event shows is what one REST read shows, so a credential receives an event only when
# that route would answer it: the scope the route states in its @operation, read from the route
# table at start-up (issue 10: a token with only realtime:subscribe received message text its
# REST calls were refused). One row per event type prefix (the longest match wins): the route for
# an event in a channel, then the route for one outside any channel. A type that no row matches
# reaches nobody; tests/test_realtime_scopes.py checks every event type has a row.
EVENT_READS: tuple[tuple[str, str, str], ...] = (
    ("message.", "GET /v1/messages/{message_id}", "GET /v1/messages/{message_id}"),
    ("thread.", "GET /v1/threads/{thread_id}", "GET /v1/threads/{thread_id}"),
    ("interaction.", "GET /v1/messages/{message_id}", "GET /v1/messages/{message_id}"),
    ("reaction.", "GET /v1/messages/{message_id}", "GET /v1/messages/{message_id}"),
    # Someone typing in a channel or thread; a notification (to one person's own address) quotes
    # the message it is about.
    ("typing.", "GET /v1/channels/{channel_id}", "GET /v1/channels/{channel_id}"),
    ("notification.", "GET /v1/messages/{message_id}", "GET /v1/messages/{message_id}"),
    # A tool call waiting for approval, and its decision: as the pending-approvals inbox shows them.
    ("approval.", "GET /v1/approvals", "GET /v1/approvals"),
    ("channel.", "GET /v1/channels/{channel_id}", "GET /v1/channels/{channel_id}"),
    ("team.", "GET /v1/teams", "GET /v1/teams"),
    # Joining or leaving a channel; joining the organisation or changing one's name or role.
    ("member.", "GET /v1/channels/{channel_id}/members", "GET /v1/users/{user_id}"),
    ("task.", "GET /v1/tasks/{task_id}", "GET /v1/tasks/{task_id}"),
    # An agent's activity in a channel is what the channel's and thread's metrics show there;
    # outside any channel, only the agent's status (diagnostics) shows it.
    ("agent.status.", "GET /v1/channels/{channel_id}/metrics", "GET /v1/agents/{agent_id}/status"),
    ("agent.token.usage", "GET /v1/threads/{thread_id}/metrics", "GET /v1/usage"),
    ("tool.", "GET /v1/threads/{thread_id}/history", "GET /v1/agents/{agent_id}/status"),
    ("worker.", "GET /v1/channels/{channel_id}/metrics", "GET /v1/agents/{agent_id}/status"),
    # Presence is part of the directory: who may list the members may see who is around.
    ("presence.", "GET /v1/users", "GET /v1/users"),
    # A memo and its transcript, or an agent's spoken reply: as the memo's transcript shows it.
    ("voice.", "GET /v1/voice/memos/{memo_id}/transcript", "GET /v1/voice/memos/{memo_id}/transcript"),
    ("system.", "GET /v1/system/health", "GET /v1/system/health"),
    ("incident.", "GET /v1/incidents/{incident_id}", "GET /v1/incidents/{incident_id}"),
    # Candidates and memories carry what people said about people: as the review queue and the
    # memories show them (docs/memory.md).
    ("memory.", "GET /v1/memory/candidates/{candidate_id}", "GET /v1/memory/candidates/{candidate_id}"),
)


# Event types in the log for the gateways only (a revoked credential): no rule in EVENT_READS, so
# they reach no stream; tests/test_realtime_scopes.py holds every other type to a rule.
INTERNAL_EVENTS: tuple[str, ...] = ("credential.",)


@dataclass(frozen=True)
class EventRule:
    """The scope an event of a type prefix needs: in a channel (which must also be readable),
    and outside any channel."""

    prefix: str
    in_channel: str
    elsewhere: str


def event_rules(route_scopes: Mapping[str, str]) -> tuple[EventRule, ...]:
    """EVENT_READS with each route replaced by the scope the route table gives it (`"GET
    /v1/messages/{message_id}": "messages:read"`), longest prefix first."""
    rules = []
    for prefix, in_channel, elsewhere in EVENT_READS:
        for route in (in_channel, elsewhere):
            assert route_scopes.get(route) in SCOPES, f"event {prefix}*: {route} is not a route that needs a scope"
        rules.append(EventRule(prefix, route_scopes[in_channel], route_scopes[elsewhere]))
    return tuple(sorted(rules, key=lambda rule: len(rule.prefix), reverse=True))


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


# Events addressed to one person (their own read markers) carry `@<user id>` as their channel:
# a person's own address, which only they may read.
PERSONAL = "@"


def personal_address(user_id: str) -> str:
    return PERSONAL + user_id


# The resource of an instance-wide act (recover the instance, reconnect a shared provider): it
# belongs to no organisation, and acting on it needs the instance role besides the act's scope.
INSTANCE: Mapping[str, Any] = MappingProxyType({"kind": "instance"})


def can_read_channel(principal: Principal, channel: Mapping[str, Any]) -> bool:
    return readable(channel, org_id=principal.org_id, role=principal.role, channels=principal.channels)


def readable(channel: Mapping[str, Any], *, org_id: str, role: str, channels: Set[str]) -> bool:
    """Whether someone of `org_id` with `role`, a member of `channels`, may read `channel`: a
    public channel of their organisation (not for a guest), or one they are a member of."""
    if channel.get("org_id") != org_id:
        return False
    if channel["id"] in channels:
        return True
    return not channel.get("private") and role != "guest"


def check(
    principal: Principal,
    action: str,
    resource: Mapping[str, Any] | None = None,
    *,
    channel: Mapping[str, Any] | None = None,
) -> None:
    """Allow, or raise NotFound / Forbidden.

    :param action: a scope from SCOPES.
    :param resource: the thing acted on (anything with an `org_id`), None for the principal's
        own organisation, or INSTANCE for the whole instance (the act also needs the instance
        role, `instance:operate`).
    :param channel: the channel the resource lives in (or is), when it lives in one.
    """
    assert action in SCOPES, f"unknown action {action!r}"
    if resource is INSTANCE:
        _require(principal, action)
        _require(principal, "instance:operate")
        return
    if resource is not None and resource.get("org_id") != principal.org_id:
        raise NotFound("no such resource")
    if channel is not None and not can_read_channel(principal, channel):
        raise NotFound("no such resource")
    _require(principal, action)


def _require(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise Forbidden(f"this needs the {scope} permission", details={"scope": scope})


# Actions anyone may attempt without signing in (each route that allows it says so).
PUBLIC_ACTIONS = frozenset({"auth:setup", "auth:login", "auth:invitation", "auth:sso", "meta:read"})


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

    def __init__(self, rules: Sequence[EventRule] = ()) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self._members: dict[str, set[str]] = {}
        self.version = 0
        # Which scope each event type needs (event_rules); without rules no event reaches anyone.
        self.rules = tuple(rules)
        self._classes: dict[str, str] = {}

    def channel_named(self, name: str, org_id: str) -> dict[str, Any] | None:
        return next((c for c in self.channels.values() if c["name"] == name and c["org_id"] == org_id), None)

    def readable_channels(self, principal: Principal) -> frozenset[str]:
        """The ids of every channel (and direct conversation) `principal` may read now."""
        return frozenset(
            channel_id for channel_id, channel in self.channels.items() if can_read_channel(principal, channel)
        )

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
        """Whether an event (anything with org_id, channel_id and event_type, the type or its
        class) may reach this principal's stream: its organisation's, allowed by the scope the
        matching REST read needs (`rules`), in a channel it may read. A closure that remembers its
        answers per event type and per channel (until `version` moves), since the check runs for
        every event and every subscriber."""
        in_channel: dict[str, bool] = {}
        elsewhere: dict[str, bool] = {}
        by_channel: dict[str, bool] = {}
        seen = [self.version]
        org_id = principal.org_id

        def visible(item: Any) -> bool:
            if item.org_id != org_id:
                return False
            channel_id = item.channel_id
            if channel_id is None:
                allowed = elsewhere.get(item.event_type)
                if allowed is None:
                    allowed = elsewhere[item.event_type] = self.type_allowed(principal, item.event_type, False)
                return allowed
            allowed = in_channel.get(item.event_type)
            if allowed is None:
                allowed = in_channel[item.event_type] = self.type_allowed(principal, item.event_type, True)
            if not allowed:
                return False
            if seen[0] != self.version:
                by_channel.clear()
                seen[0] = self.version
            readable = by_channel.get(channel_id)
            if readable is None:
                if channel_id.startswith(PERSONAL):
                    mine: bool = channel_id == personal_address(principal.user_id)
                    by_channel[channel_id] = mine
                    return mine
                channel = self.channels.get(channel_id)
                readable = by_channel[channel_id] = channel is not None and can_read_channel(principal, channel)
            return readable

        return visible

    def rule(self, event_type: str) -> EventRule | None:
        return next((rule for rule in self.rules if event_type.startswith(rule.prefix)), None)

    def event_class(self, event_type: str) -> str:
        """An event type's visibility class: the prefix of its rule, or "" when none matches
        (events of one organisation, channel and class are visible to the same subscribers).
        Asked for every published event, so remembered per type."""
        found = self._classes.get(event_type)
        if found is None:
            rule = self.rule(event_type)
            found = self._classes[event_type] = "" if rule is None else rule.prefix
        return found

    def type_allowed(self, principal: Principal, event_type: str, in_channel: bool) -> bool:
        rule = self.rule(event_type)
        if rule is None:
            return False
        return (rule.in_channel if in_channel else rule.elsewhere) in principal.scopes
