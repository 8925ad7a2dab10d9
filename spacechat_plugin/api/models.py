"""Request bodies: strict pydantic models (unknown fields and wrong types are refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KEY_PATTERN = r"^[A-Za-z0-9._:~-]{1,128}$"
CHANNEL_NAME = r"^[a-z0-9][a-z0-9_-]{0,79}$"
CATEGORIES = ("agents", "departments", "ops", "incidents", "projects")


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
    topic: str = Field("", max_length=250)
    category: Literal["agents", "departments", "ops", "incidents", "projects"] = "departments"
    private: bool = False
    team_id: str | None = None


EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$"
ROLE = Literal["owner", "admin", "operator", "member", "guest"]
INVITABLE_ROLE = Literal["admin", "operator", "member", "guest"]


class Setup(Body):
    token: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=254)
    name: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1024)
    device_name: str = Field("browser", max_length=80)
    return_token: bool = False


class Login(Body):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    org_id: str | None = None
    device_name: str = Field("browser", max_length=80)
    return_token: bool = Field(False, description="Also return the session reference, for non-browser clients.")


class InvitationToken(Body):
    token: str = Field(min_length=1, max_length=200)


class AcceptInvitation(Body):
    token: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=EMAIL, max_length=254)
    name: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=1024)
    device_name: str = Field("browser", max_length=80)
    return_token: bool = False


class CreateInvitation(Body):
    role: INVITABLE_ROLE = "member"
    email: str | None = Field(None, pattern=EMAIL, max_length=254)
    channel_ids: list[str] = Field(default_factory=list, max_length=100)
    expires_in_hours: float | None = Field(None, gt=0, le=24 * 90)


class CreateToken(Body):
    name: str = Field(min_length=1, max_length=80)
    scopes: list[str] = Field(min_length=1, max_length=40)
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class CreateBot(Body):
    name: str = Field(min_length=1, max_length=80)
    scopes: list[str] | None = Field(None, max_length=40)
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class ChangeRole(Body):
    role: ROLE


class UpdateMe(Body):
    name: str | None = Field(None, min_length=1, max_length=80)
    password: str | None = Field(None, min_length=1, max_length=1024)
    current_password: str | None = Field(None, max_length=1024)


class CreateTeam(Body):
    name: str = Field(min_length=1, max_length=80)


class CreateOrg(Body):
    name: str = Field(min_length=1, max_length=80)


class UpdateChannel(Body):
    name: str | None = Field(None, pattern=CHANNEL_NAME)
    topic: str | None = Field(None, max_length=250)
    category: Literal["agents", "departments", "ops", "incidents", "projects"] | None = None
    archived: bool | None = None


class AddMember(Body):
    user_id: str = Field(min_length=1, max_length=100)


class MarkRead(Body):
    seq: int = Field(ge=0, description="The seq of the newest message read.")


PRIORITY = Literal["critical", "high", "medium", "low"]
TASK_STATUS = Literal["pending_approval", "backlog", "ready", "in_progress", "done", "failed"]


class CreateTask(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20_000)
    team_id: str | None = None
    channel_id: str | None = Field(None, description="The task's home channel; a task card is posted there.")
    status: Literal["pending_approval", "backlog", "ready"] = "backlog"
    priority: PRIORITY = "medium"
    assignee_id: str | None = None
    post_card: bool = True


class UpdateTask(Body):
    title: str | None = Field(None, min_length=1, max_length=200)
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


class CreateIncident(Body):
    title: str = Field(min_length=1, max_length=300)
    severity: Literal["critical", "major", "minor"] = "major"
    details: str = Field("", max_length=5000)


class IncidentAction(Body):
    to: str | None = Field(None, max_length=100, description="For escalate: role:admin, role:owner or a member id.")
    note: str | None = Field(None, max_length=1000)


class SpeakMessage(Body):
    message_id: str = Field(min_length=1, max_length=64, description="The agent's reply to read aloud.")
