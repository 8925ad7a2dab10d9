"""Request bodies: strict pydantic models (unknown fields and wrong types are refused)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue
from pydantic_core import PydanticCustomError

from ..identity.permissions import ROLE_SCOPES, SCOPES

KEY_PATTERN = r"^[A-Za-z0-9._:~-]{1,128}$"
CHANNEL_NAME = r"^[a-z0-9][a-z0-9_-]{0,79}$"
CATEGORIES = ("agents", "departments", "ops", "incidents", "projects")


# Text that people read as a name or a title: no control characters (line breaks included) and no
# bidirectional overrides or isolates, which make a name display as something else ("‮gnp.exe"
# shows as "exe.png"). Refused with 422 `unsafe_text` (issue 10), as channel names always were.
UNSAFE_CHARACTERS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")


def _readable(value: str) -> str:
    found = _UNSAFE.search(value)
    if found is not None:
        raise PydanticCustomError(
            "unsafe_text",
            "contains a control or bidirectional-override character (U+{code})",
            {"code": f"{ord(found.group()):04X}"},
        )
    return value


# The pattern only documents the rule in the OpenAPI document; the validator enforces it (422).
ReadableText = Annotated[
    str, AfterValidator(_readable), Field(json_schema_extra={"pattern": f"^[^{UNSAFE_CHARACTERS}]*$"})
]


# What a token or a bot may be given: the document lists them, so a client knows before asking.
_ALL_SCOPES: list[JsonValue] = [*SCOPES]
_BOT_SCOPES: list[JsonValue] = [*sorted(ROLE_SCOPES["agent"])]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PostMessage(Body):
    text: str = Field("", description="Markdown (or plain) text; may be empty when attachments are sent.")
    format: Literal["markdown", "plain"] = "markdown"
    attachments: list[str] = Field(default_factory=list, description="Ids returned by POST /v1/uploads.")
    blocks: list[Any] | None = Field(None, description="A card (docs/cards.md): buttons, selects, forms, polls...")
    client_msg_id: str | None = Field(
        None,
        pattern=KEY_PATTERN,
        description="Idempotency key, as an alternative to the Idempotency-Key header.",
    )


class CreateChannel(Body):
    name: str = Field(pattern=CHANNEL_NAME, description="Lower-case letters, digits, '-' and '_'; unique in the org.")
    topic: ReadableText = Field("", max_length=250)
    category: Literal["agents", "departments", "ops", "incidents", "projects"] = "departments"
    private: bool = False
    team_id: str | None = None


# No `@`, space or control character in any part; spelled out (not `\s`), since regex dialects
# disagree on what `\s` covers and the document's readers must match what the server does.
_EMAIL_CHAR = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
EMAIL = rf"^{_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}{{1,190}}\.{_EMAIL_CHAR}{{1,60}}$"
ROLE = Literal["owner", "admin", "operator", "member", "guest"]
INVITABLE_ROLE = Literal["admin", "operator", "member", "guest"]


class Setup(Body):
    token: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=254)
    name: ReadableText = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1024)
    device_name: ReadableText = Field("browser", max_length=80)
    return_token: bool = False


class Login(Body):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    org_id: str | None = None
    device_name: ReadableText = Field("browser", max_length=80)
    return_token: bool = Field(False, description="Also return the session reference, for non-browser clients.")


class InvitationToken(Body):
    token: str = Field(min_length=1, max_length=200)


class AcceptInvitation(Body):
    token: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=254)
    name: ReadableText = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1024)
    device_name: ReadableText = Field("browser", max_length=80)
    return_token: bool = False


class CreateInvitation(Body):
    role: INVITABLE_ROLE = "member"
    email: str | None = Field(None, pattern=EMAIL, max_length=254)
    channel_ids: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=100)
    expires_in_hours: float | None = Field(None, gt=0, le=24 * 90)


class CreateToken(Body):
    name: ReadableText = Field(min_length=1, max_length=80)
    scopes: list[str] = Field(
        min_length=1, max_length=40, json_schema_extra={"items": {"type": "string", "enum": _ALL_SCOPES}}
    )
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class CreateBot(Body):
    name: ReadableText = Field(min_length=1, max_length=80)
    scopes: list[str] | None = Field(
        None,
        max_length=40,
        json_schema_extra={
            "anyOf": [
                {"type": "array", "maxItems": 40, "items": {"type": "string", "enum": _BOT_SCOPES}},
                {"type": "null"},
            ]
        },
    )
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class ChangeRole(Body):
    role: ROLE


class UpdateMe(Body):
    name: ReadableText | None = Field(None, min_length=1, max_length=80)
    password: str | None = Field(None, min_length=1, max_length=1024)
    current_password: str | None = Field(None, max_length=1024)
    avatar_id: str | None = Field(
        None, max_length=100, description="An image you uploaded (POST /v1/uploads) as your picture; null removes it."
    )


class CreateTeam(Body):
    name: ReadableText = Field(min_length=1, max_length=80)


class CreateOrg(Body):
    name: ReadableText = Field(min_length=1, max_length=80)


class UpdateChannel(Body):
    name: str | None = Field(None, pattern=CHANNEL_NAME)
    topic: ReadableText | None = Field(None, max_length=250)
    category: Literal["agents", "departments", "ops", "incidents", "projects"] | None = None
    archived: bool | None = None


class AddMember(Body):
    user_id: str = Field(min_length=1, max_length=100)


class MarkRead(Body):
    seq: int = Field(ge=0, description="The seq of the newest message read.")


PRIORITY = Literal["critical", "high", "medium", "low"]
TASK_STATUS = Literal["pending_approval", "backlog", "ready", "in_progress", "done", "failed"]


class CreateTask(Body):
    title: ReadableText = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20_000)
    team_id: str | None = None
    channel_id: str | None = Field(None, description="The task's home channel; a task card is posted there.")
    status: Literal["pending_approval", "backlog", "ready"] = "backlog"
    priority: PRIORITY = "medium"
    assignee_id: str | None = None
    post_card: bool = True


class UpdateTask(Body):
    title: ReadableText | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    priority: PRIORITY | None = None
    status: TASK_STATUS | None = None
    reason: str | None = Field(None, max_length=1000)


class TaskAction(Body):
    assignee_id: str | None = Field(None, description="For assign: a member or agent id, or null to unassign.")
    reason: str | None = Field(None, max_length=1000)


class TaskComment(Body):
    text: str = Field(min_length=1, max_length=10_000)


class SubmitInteraction(Body):
    message_id: str = Field(min_length=1, max_length=100)
    action_id: str = Field(min_length=1, max_length=64, description="The element's action_id; `vote` for a poll.")
    block_id: str | None = Field(None, max_length=64)
    values: Any = Field(None, description="A select's or poll's chosen values, a form's fields; absent for a button.")
    client_id: str | None = Field(None, pattern=KEY_PATTERN, description="Idempotency key (or the header).")


class RelayedInteraction(Body):
    message_id: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any] = Field(description="The connector's own interaction payload, as it sent it.")


class OpsRequest(Body):
    reason: str = Field(min_length=3, max_length=1000, description="Why: kept in the audit log.")
    thread_id: str | None = Field(None, description="For retry: one thread of the channel (default: the last turn).")


class OpsDecision(Body):
    reason: str | None = Field(None, max_length=1000)


class IncidentAction(Body):
    to: str | None = Field(None, max_length=100, description="For escalate: role:admin, role:owner or a member id.")
    note: str | None = Field(None, max_length=1000)


# --- chat essentials (issue 13) ------------------------------------------------------------


class EditMessage(Body):
    text: str = Field(description="The new text (Markdown or plain, as the message was posted).")


class React(Body):
    emoji: str = Field(min_length=1, max_length=64, description="One emoji (👍), or its alias (`:thumbsup:`).")


class CreateDirect(Body):
    user_ids: list[str] = Field(
        max_length=8, description="The others in the conversation (people or agents); you are added yourself."
    )


class NotificationLevel(Body):
    level: Literal["all", "mentions", "muted"] = Field(
        description="all: every message; mentions: mentions, direct messages and replies in your threads; muted: none."
    )


class ReportPresence(Body):
    status: Literal["active", "away"] = Field(description="What this page says about you: in use, or hidden/idle.")


class Typing(Body):
    thread_id: str | None = Field(None, description="The thread being replied in; null for a new thread.")
    typing: bool = Field(True, description="true while typing (repeat every few seconds); false when done.")


class SpeakMessage(Body):
    message_id: str = Field(min_length=1, max_length=64, description="The agent's reply to read aloud.")


# --- single sign-on (docs/sso.md) -----------------------------------------------------------------

# An issuer is an https URL without query or fragment (OpenID Connect Discovery 1.0, section 3);
# plain http only on this machine's loopback, for a provider run beside the server.
ISSUER = r"^(https://[A-Za-z0-9.-]+|http://(localhost|127\.0\.0\.1|\[::1\]))(:[0-9]{1,5})?(/[^\x00-\x20?#\x7f]*)?$"
DOMAIN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"


class RoleRule(Body):
    value: ReadableText = Field(min_length=1, max_length=200, description="A value the role claim holds.")
    role: INVITABLE_ROLE


class SSOSettings(Body):
    issuer: str = Field(pattern=ISSUER, max_length=500, description="The provider's issuer URL, exactly.")
    client_id: ReadableText = Field(min_length=1, max_length=255)
    client_secret: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="Write-only: never returned. Leave out to keep the one stored.",
    )
    allowed_domains: list[Annotated[str, Field(pattern=DOMAIN, max_length=253)]] = Field(
        default_factory=list,
        max_length=100,
        description="Lower-case e-mail domains that may sign in; empty lets any verified address in.",
    )
    role_claim: str = Field(
        "groups", pattern=r"^[A-Za-z0-9_.:/-]{1,100}$", description="The ID token claim roles come from."
    )
    role_mapping: list[RoleRule] = Field(
        default_factory=list, max_length=50, description="First match wins: the claim holds `value` -> `role`."
    )
    default_role: INVITABLE_ROLE = Field("member", description="The role of a new account that no rule matches.")
    enabled: bool = True
