"""Model providers: one streaming interface, two implementations.

A provider turns a conversation (OpenAI-style messages) and a list of tools into a stream of
`ProviderEvent`s: text and reasoning deltas, tool calls, usage, and (scripted only) a card.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Card:
    blocks: list[dict[str, Any]]


ProviderEvent = TextDelta | ReasoningDelta | ToolCall | Usage | Card


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


class ProviderError(Exception):
    """The provider failed; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class TurnError(Exception):
    """An agent's run failed (its own error, not the provider's connection): the turn fails,
    the provider's health does not change."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Provider(Protocol):
    name: str
    kind: str

    def stream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[ProviderEvent]:
        """Stream one model response."""
        ...

    async def reconnect(self) -> None:
        """Drop connections and open fresh ones."""
        ...

    async def close(self) -> None: ...
