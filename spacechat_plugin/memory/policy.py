"""Memory policies: what may become memory, from which sources, at what granularity, with which
metadata, kept how long, and each person's default consent.

A policy is set per organisation, team or channel; each level holds only the keys it sets, and
for each key the nearest level that sets it wins (channel, then team, then organisation), then
the defaults below. Unknown keys and out-of-range values are refused (400) before anything is
stored (issue 12, "Bad input").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

INGESTION = ("off", "review", "auto")
SOURCES = ("agent", "message", "interaction", "task")
GRANULARITY = ("fact", "thread")
METADATA = ("role", "team", "channel", "device")
# Spacebot's memory types (its `MemoryType`).
MEMORY_TYPES = ("fact", "preference", "decision", "identity", "event", "observation", "goal", "todo")
LEVELS = ("org", "team", "channel")
MAX_RETENTION_DAYS = 3650

# What holds where no level says otherwise: ingestion needs a person's review; agents' saves,
# interactions and task transitions may produce candidates but plain messages do not (a fact per
# chat line is noise unless an organisation asks for it); nothing is purged; people are opted in
# until they opt out (as Slack's and Open WebUI's memory features default).
DEFAULTS: dict[str, Any] = {
    "ingestion": "review",
    "sources": ["agent", "interaction", "task"],
    "granularity": "fact",
    "metadata": [],
    "retention_days": None,
    "consent_default": "in",
}


class PolicySettings(BaseModel):
    """The keys one level sets. A key left out inherits; `retention_days: null` keeps forever."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ingestion: Literal["off", "review", "auto"] | None = Field(
        None, description="off: nothing becomes memory; review: candidates wait for a person; auto: saved directly."
    )
    sources: list[Literal["agent", "message", "interaction", "task"]] | None = Field(
        None, description="What may produce candidates: agent saves, messages, interactions (votes, forms), tasks."
    )
    granularity: Literal["fact", "thread"] | None = Field(
        None, description="fact: one candidate per message; thread: one summary candidate per thread."
    )
    metadata: list[Literal["role", "team", "channel", "device"]] | None = Field(
        None, description="Which metadata about the person a candidate may keep."
    )
    retention_days: int | None = Field(
        None, ge=1, le=MAX_RETENTION_DAYS, description="Purge messages, candidates and memories older than this."
    )
    consent_default: Literal["in", "out"] | None = Field(
        None, description="Whether people who have not chosen count as opted in or out."
    )

    def as_stored(self) -> dict[str, Any]:
        """Only the keys the caller sent (an explicit null retention is kept: keep forever)."""
        return {key: getattr(self, key) for key in sorted(self.model_fields_set)}


def effective(levels: Sequence[Mapping[str, Any] | None]) -> tuple[dict[str, Any], dict[str, str]]:
    """The policy that holds, from the levels' stored settings ordered org, team, channel (None
    where a level sets nothing); with, per key, the level it came from (`default` if none)."""
    policy = dict(DEFAULTS)
    origin = dict.fromkeys(DEFAULTS, "default")
    for level, settings in zip(LEVELS, levels, strict=True):
        for key, value in (settings or {}).items():
            if key in policy:
                policy[key] = value
                origin[key] = level
    return policy, origin


def allows(policy: Mapping[str, Any], source: str) -> bool:
    """Whether a source may produce candidates at all under `policy`."""
    return policy["ingestion"] != "off" and source in policy["sources"]


def kept_metadata(policy: Mapping[str, Any], available: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a candidate may carry: only the kinds the policy permits, only when known."""
    return {key: available[key] for key in policy["metadata"] if available.get(key) is not None}
