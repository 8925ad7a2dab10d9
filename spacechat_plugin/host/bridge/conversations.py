"""What the bridge keeps per Spacebot conversation, and how Spacebot's payloads are read.

A Spacechat thread, for one agent, is one Spacebot portal session (see host.py). Nothing here is
stored: a restart of either side loses no mapping, only the short memory listed in
docs/bridge.md ("What the bridge cannot do").
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SESSION_PREFIX = "portal:chat:"
MODEL = PROVIDER = "spacebot"
RESULT_CHARS = 4000
STATUS_CHARS = 256
DETAIL_CHARS = 300
REMEMBERED_TEXTS = 100

# Spacebot's channel-process routing tools: its own UI does not show them as tool runs
# (`is_hidden_channel_tool`, src/api/state.rs), and neither does Spacechat.
HIDDEN_CHANNEL_TOOLS = frozenset({"reply", "react", "skip", "set_outcome", "spawn_worker", "branch", "route", "cancel"})
# How a failed model call reaches the conversation (`Channel::run_turn`, src/agent/channel.rs).
ERROR_REPLY = "I encountered an error: "

Payload = dict[str, Any]


@dataclass(frozen=True)
class Conversation:
    """One agent in one Spacechat thread; Spacebot knows it as a portal session."""

    agent_id: str
    channel_id: str
    thread_id: str

    @property
    def session_id(self) -> str:
        return f"{SESSION_PREFIX}{self.agent_id}:{self.channel_id}:{self.thread_id}"

    @property
    def place(self) -> dict[str, str]:
        return {"agent_id": self.agent_id, "channel_id": self.channel_id, "thread_id": self.thread_id}

    @classmethod
    def parse(cls, session_id: str) -> Conversation | None:
        if not session_id.startswith(SESSION_PREFIX):
            return None
        parts = session_id[len(SESSION_PREFIX) :].rsplit(":", 2)
        if len(parts) != 3 or not all(parts):
            return None
        return cls(*parts)


@dataclass
class Turn:
    turn_id: str
    started: float = field(default_factory=time.monotonic)
    text: str = ""
    reasoning: str = ""
    ttft_ms: int | None = None

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


@dataclass
class Input:
    """What was last sent into a conversation, kept for retry_turn."""

    text: str
    sender_name: str
    message_ids: list[str]


@dataclass
class Ask:
    """A question of Spacebot's `ask` tool (src/tools/ask.rs): its arguments from `tool_started`,
    its id from the tool's JSON result, its text from the `outbound_message` that carried it."""

    call_id: str
    question: str
    options: list[dict[str, str]]
    multi_select: bool
    question_id: str | None = None
    text: str | None = None  # the message, held until the question id is known
    delivered: bool = False
    answered: bool = False

    @property
    def fallback_text(self) -> str:
        """`build_text_fallback`: the question as a numbered list, as text-only channels show it."""
        lines = [self.question.rstrip()]
        for index, option in enumerate(self.options, start=1):
            description = option.get("description", "").strip()
            label = option["label"].strip()
            lines.append(f"{index}. {label} — {description}" if description else f"{index}. {label}")
        return "\n".join(lines).rstrip()

    def blocks(self) -> list[dict[str, Any]]:
        """A card whose action ids are Spacebot's own `ask:{question_id}:{idx}` (buttons) or
        `ask:{question_id}:menu` with option values `ask:{question_id}:{idx}` (a select, for a
        multiple choice or more than five options), as build_interactive_elements makes them."""
        qid = self.question_id
        element: dict[str, Any]
        if self.multi_select or len(self.options) > 5:
            element = {
                "type": "select",
                "action_id": f"ask:{qid}:menu",
                "placeholder": "Select one or more options…" if self.multi_select else "Select an option…",
                "multiple": self.multi_select,
                "options": [{"label": o["label"][:75], "value": f"ask:{qid}:{i}"} for i, o in enumerate(self.options)],
            }
            elements = [element]
        else:
            elements = [
                {"type": "button", "action_id": f"ask:{qid}:{i}", "label": o["label"][:75], "style": "primary"}
                for i, o in enumerate(self.options)
            ]
        return [
            {"type": "section", "text": self.question[:3000] or "?"},
            {"type": "actions", "block_id": "ask", "elements": elements},
        ]


@dataclass
class ConversationState:
    pending: list[str] = field(default_factory=list)  # message ids delivered since the last turn began
    last_input: Input | None = None
    sent_at: float = 0.0
    last_event: float = field(default_factory=time.monotonic)
    turn: Turn | None = None
    last_turn_id: str | None = None
    next_turn_id: str | None = None  # preset by retry_turn, so its caller learns the id
    workers: set[str] = field(default_factory=set)
    asks: list[Ask] = field(default_factory=list)
    # Backfill (sync.py): the history rows accounted for (None until the first send of this
    # process took its baseline), what was delivered and not yet seen in the history, what the
    # backfill delivered and the live stream may still bring, and echoes of our own sends.
    known_ids: set[str] | None = None
    delivered: deque[str] = field(default_factory=lambda: deque(maxlen=REMEMBERED_TEXTS))
    backfilled: deque[str] = field(default_factory=lambda: deque(maxlen=REMEMBERED_TEXTS))
    echoes: deque[str] = field(default_factory=lambda: deque(maxlen=REMEMBERED_TEXTS))
    # Per-thread usage (sync.py): Spacebot's conversation totals when this process first sent
    # here, and as last reported.
    usage_base: dict[str, float] | None = None
    usage_seen: dict[str, float] = field(default_factory=dict)


def reason(exc: BaseException) -> str:
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:DETAIL_CHARS]


def arguments(args: Any) -> dict[str, Any]:
    """Spacebot sends tool arguments as a JSON string cut at 2,000 bytes; keep what parses."""
    if isinstance(args, Mapping):
        return dict(args)
    try:
        parsed = json.loads(str(args or "{}"))
    except ValueError:
        return {"raw": str(args)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def worker_of(payload: Payload) -> str | None:
    """The worker an event comes from: worker events name it; tool events name their process."""
    if payload.get("worker_id"):
        return str(payload["worker_id"])
    return str(payload.get("process_id")) if payload.get("process_type") == "worker" else None


def call_key(payload: Payload) -> tuple[str, str]:
    """Pairs a tool call's start with its end: by call id, or by process and tool in order."""
    return str(payload.get("process_id", "")), str(payload.get("call_id") or payload.get("tool_name", ""))


def outcome(payload: Payload) -> str:
    if payload.get("success"):
        return "succeeded"
    if str(payload.get("result", "")).startswith("Worker cancelled"):
        return "cancelled"
    return "failed"


def hidden(payload: Payload) -> bool:
    return payload.get("process_type") == "channel" and payload.get("tool_name") in HIDDEN_CHANNEL_TOOLS


def remember(texts: deque[str], text: str) -> None:
    texts.append(text)


def take(texts: deque[str], text: str) -> bool:
    """Remove one `text` from `texts`; whether it was there."""
    try:
        texts.remove(text)
    except ValueError:
        return False
    return True
