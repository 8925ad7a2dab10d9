"""Request bodies of the agent-operations routes (#15): approvals, incidents, stop."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .models import Body, ReadableText

AGENT_OR_ANY = r"^(\*|[a-z0-9][a-z0-9_-]{0,39})$"
TOOL_OR_ANY = r"^(\*|[A-Za-z0-9_.:-]{1,100})$"


class ApprovalPolicyBody(Body):
    agent_id: str = Field("*", pattern=AGENT_OR_ANY, description="An agent id, or * for every agent.")
    tool: str = Field(pattern=TOOL_OR_ANY, description="A tool name, or * for every tool.")
    policy: Literal["always", "once_per_thread", "auto", "never"]
    risk: Literal["low", "medium", "high", "critical"] = "medium"


class ApprovalDecision(Body):
    decision: Literal["approve", "approve_thread", "deny", "deny_remember"]


class OpenIncident(Body):
    title: ReadableText = Field(min_length=1, max_length=300)
    severity: str | None = Field(None, max_length=20, description="sev1-sev4 (incidents.severities); the default")
    details: str = Field("", max_length=5000)
    message_id: str | None = Field(None, description="Open it from this message: it is pinned to the timeline.")


class IncidentStatus(Body):
    status: Literal["investigating", "mitigated", "resolved", "closed"]
    note: str | None = Field(None, max_length=1000)


class IncidentSeverity(Body):
    severity: str = Field(max_length=20)


class IncidentRole(Body):
    role: str = Field(max_length=40)
    user_id: str = Field(max_length=100)


class IncidentUpdate(Body):
    text: str = Field(min_length=1, max_length=5000)


class IncidentPin(Body):
    message_id: str = Field(max_length=100)
