"""Request bodies: strict pydantic models (unknown fields and wrong types are refused)."""

from __future__ import annotations

from typing import Literal

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
