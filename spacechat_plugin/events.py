"""The canonical event envelope and its payloads: the realtime contract (docs/events.md).

Every change is one event in an append-only log. The store assigns `seq`, a global, strictly
increasing integer that is also the SSE `id:`. Payload classes carry `event_type`; those marked
`live_only` (stream deltas) are fanned out but never written to the log.

This module imports nothing else of the package: it is a contract.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

ActorKind = Literal["user", "agent", "system"]

# The HTTP request being served, if any: events made while serving it carry its id, and so do
# log lines (logs.py), so a request can be followed from its log line to the events it caused.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


# The formatted second of the last timestamp, reused until the second changes (strftime showed
# up in the send benchmark's profile). One tuple, so a reader in another thread never sees a
# second paired with another second's text.
_last_second: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """RFC 3339 UTC with milliseconds, the one timestamp format of the API."""
    global _last_second
    second, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _last_second
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
        _last_second = cached
    return f"{cached[1]}{nanos // 1_000_000:03d}Z"


# Ids name things; they are not secrets (every access is checked), so their random bits come
# from a fast generator seeded once from the OS, not a system call per id (which showed up in
# the send benchmark's profile). Secrets (tokens, links) use the `secrets` module.
_random = random.Random(os.urandom(32))


def new_id(prefix: str = "") -> str:
    """A time-ordered unique id (RFC 9562 UUIDv7: 48-bit Unix ms, version, 74 random bits),
    optionally with a type prefix: `msg_0193...`."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | _random.getrandbits(12) << 64
    value |= 0b10 << 62 | _random.getrandbits(62)
    text = f"{value:032x}"
    if prefix:
        return f"{prefix}_{text}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: str | None = None


SYSTEM = Actor("system", None)


@dataclass(frozen=True)
class Payload:
    """Base of every payload; subclasses name their `event_type`."""

    event_type: ClassVar[str] = ""
    live_only: ClassVar[bool] = False


# --- messages and threads -----------------------------------------------------------------


@dataclass(frozen=True)
class MessageCreated(Payload):
    """message.created: a message was posted, by a person or an agent (an agent's reply starts in
    state `streaming`). `message` is the full message as the API returns it."""

    event_type: ClassVar[str] = "message.created"
    message: dict[str, Any]


@dataclass(frozen=True)
class MessageStreamDelta(Payload):
    """message.stream.delta: live only, never in the log. `text` was appended to a streaming
    message at character `offset`; a client whose copy is not `offset` long refetches it."""

    event_type: ClassVar[str] = "message.stream.delta"
    live_only: ClassVar[bool] = True
    message_id: str
    offset: int
    text: str
    kind: Literal["text", "reasoning"] = "text"


@dataclass(frozen=True)
class MessageCompleted(Payload):
    """message.completed: a streaming message finished; `message` carries the final text.
    `reason` is `stopped` when someone stopped the reply (it keeps what was written), else None."""

    event_type: ClassVar[str] = "message.completed"
    message: dict[str, Any]
    reason: str | None = None


@dataclass(frozen=True)
class MessageFailed(Payload):
    """message.failed: a streaming message ended without completing. `reason` is `interrupted`
    when a restart cut the stream, `error` when the agent's turn failed, `cancelled` when stopped."""

    event_type: ClassVar[str] = "message.failed"
    message: dict[str, Any]
    reason: str
    error: str | None = None


@dataclass(frozen=True)
class MessageUpdated(Payload):
    """message.updated: a message changed in place (edited text, card state, superseded). `change`
    is `edited` when its author edited the text (the earlier version is kept), else None."""

    event_type: ClassVar[str] = "message.updated"
    message: dict[str, Any]
    change: str | None = None


@dataclass(frozen=True)
class MessageDeleted(Payload):
    """message.deleted: a message was deleted; `message` is its tombstone (no text, files or card;
    `deleted_at` and `deleted_by` set). Its place in the thread stays."""

    event_type: ClassVar[str] = "message.deleted"
    message: dict[str, Any]


@dataclass(frozen=True)
class ReactionAdded(Payload):
    """reaction.added: someone reacted to a message with an emoji; `reactions` is the message's
    whole summary after it (`[{emoji, count, user_ids}]`) and `updated_at` the message's."""

    event_type: ClassVar[str] = "reaction.added"
    message_id: str
    emoji: str
    user_id: str
    reactions: list[dict[str, Any]]
    updated_at: str


@dataclass(frozen=True)
class ReactionRemoved(Payload):
    """reaction.removed: someone took their reaction back; the same fields as reaction.added."""

    event_type: ClassVar[str] = "reaction.removed"
    message_id: str
    emoji: str
    user_id: str
    reactions: list[dict[str, Any]]
    updated_at: str


@dataclass(frozen=True)
class ThreadRead(Payload):
    """thread.read: a person's read marker in a thread moved (from any of their devices). Addressed
    to that person only (the envelope's `channel_id` is their own address, `@<user id>`), so
    every session of theirs clears the thread's unread count."""

    event_type: ClassVar[str] = "thread.read"
    thread_id: str
    channel_id: str
    last_read_seq: int


@dataclass(frozen=True)
class ThreadCreated(Payload):
    """thread.created: a top-level message opened a thread."""

    event_type: ClassVar[str] = "thread.created"
    thread: dict[str, Any]


@dataclass(frozen=True)
class ChannelCreated(Payload):
    """channel.created: a channel was created."""

    event_type: ClassVar[str] = "channel.created"
    channel: dict[str, Any]


@dataclass(frozen=True)
class ChannelUpdated(Payload):
    """channel.updated: a channel's name, topic, category or archive state changed."""

    event_type: ClassVar[str] = "channel.updated"
    channel: dict[str, Any]


@dataclass(frozen=True)
class TeamCreated(Payload):
    """team.created: a team was created."""

    event_type: ClassVar[str] = "team.created"
    team: dict[str, Any]


@dataclass(frozen=True)
class MemberJoined(Payload):
    """member.joined: a person or bot joined the organisation (setup, invitation, bot created)."""

    event_type: ClassVar[str] = "member.joined"
    user: dict[str, Any]


@dataclass(frozen=True)
class MemberUpdated(Payload):
    """member.updated: a member's role or name changed, or the member was deactivated."""

    event_type: ClassVar[str] = "member.updated"
    user: dict[str, Any]


@dataclass(frozen=True)
class MemberAdded(Payload):
    """member.added: a member was added to the channel (or joined it)."""

    event_type: ClassVar[str] = "member.added"
    user_id: str
    added_by: str | None


@dataclass(frozen=True)
class MemberRemoved(Payload):
    """member.removed: a member was removed from the channel (or left it)."""

    event_type: ClassVar[str] = "member.removed"
    user_id: str
    removed_by: str | None


# --- interactions and tasks ---------------------------------------------------------------


@dataclass(frozen=True)
class InteractionSubmitted(Payload):
    """interaction.submitted: someone clicked a button, chose from a select, submitted a form or
    voted on a card; `interaction` carries the message, the action, the validated values and who."""

    event_type: ClassVar[str] = "interaction.submitted"
    interaction: dict[str, Any]


@dataclass(frozen=True)
class TaskCreated(Payload):
    """task.created: a task was created."""

    event_type: ClassVar[str] = "task.created"
    task: dict[str, Any]


@dataclass(frozen=True)
class TaskUpdated(Payload):
    """task.updated: a task's status, fields or comments changed; `change` says what
    (`status`, `edited`, `comment`) and `previous_status` what it was."""

    event_type: ClassVar[str] = "task.updated"
    task: dict[str, Any]
    change: str
    previous_status: str | None = None


@dataclass(frozen=True)
class TaskAssigned(Payload):
    """task.assigned: a task got a new assignee (a person or an agent), or none."""

    event_type: ClassVar[str] = "task.assigned"
    task: dict[str, Any]
    previous_assignee_id: str | None = None


@dataclass(frozen=True)
class TaskCompleted(Payload):
    """task.completed: a task reached `done`."""

    event_type: ClassVar[str] = "task.completed"
    task: dict[str, Any]


# --- agents, tools and workers -------------------------------------------------------------


@dataclass(frozen=True)
class AgentStatusChanged(Payload):
    """agent.status.changed: an agent started or stopped working in a channel (typing, thinking,
    running a tool, idle). Drives the UI's working indicator."""

    event_type: ClassVar[str] = "agent.status.changed"
    agent_id: str
    status: str
    detail: str | None = None


@dataclass(frozen=True)
class AgentTokenUsage(Payload):
    """agent.token.usage: one LLM request's token usage and cost."""

    event_type: ClassVar[str] = "agent.token.usage"
    agent_id: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    turn_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class ToolStarted(Payload):
    """tool.started: an agent began a tool call."""

    event_type: ClassVar[str] = "tool.started"
    agent_id: str
    call_id: str
    tool: str
    arguments_summary: str
    worker_id: str | None = None


@dataclass(frozen=True)
class ToolCompleted(Payload):
    """tool.completed: a tool call returned."""

    event_type: ClassVar[str] = "tool.completed"
    agent_id: str
    call_id: str
    tool: str
    duration_ms: int
    result_summary: str
    worker_id: str | None = None


@dataclass(frozen=True)
class ToolFailed(Payload):
    """tool.failed: a tool call raised, was denied or was skipped."""

    event_type: ClassVar[str] = "tool.failed"
    agent_id: str
    call_id: str
    tool: str
    duration_ms: int
    error: str
    worker_id: str | None = None


@dataclass(frozen=True)
class WorkerStarted(Payload):
    """worker.started: a worker (an agent's background task) started."""

    event_type: ClassVar[str] = "worker.started"
    worker_id: str
    agent_id: str
    task: str


@dataclass(frozen=True)
class WorkerStatus(Payload):
    """worker.status: a worker's state or progress changed (running, waiting_for_input)."""

    event_type: ClassVar[str] = "worker.status"
    worker_id: str
    agent_id: str
    state: str
    status: str


@dataclass(frozen=True)
class WorkerCompleted(Payload):
    """worker.completed: a worker finished with an outcome (succeeded, partial, cancelled,
    timed_out, blocked, failed)."""

    event_type: ClassVar[str] = "worker.completed"
    worker_id: str
    agent_id: str
    outcome: str
    result: str
    success: bool


@dataclass(frozen=True)
class WorkerQuestionAsked(Payload):
    """worker.question_asked: a worker asks the people in the conversation a question and waits
    (`questions`: `{question, header, options: [{label, description}]}`)."""

    event_type: ClassVar[str] = "worker.question_asked"
    worker_id: str
    agent_id: str
    question_id: str
    questions: list[dict[str, Any]]


@dataclass(frozen=True)
class WorkerPermissionAsked(Payload):
    """worker.permission_asked: a worker asks permission for an action and waits."""

    event_type: ClassVar[str] = "worker.permission_asked"
    worker_id: str
    agent_id: str
    permission_id: str
    description: str
    patterns: list[str]


@dataclass(frozen=True)
class SystemRecoveryInvoked(Payload):
    """system.recovery.invoked: an operator ran an operation (retry, restart, reconnect, recover),
    or asked for one that waits for a second operator; `outcome` is ok, failed, pending or denied."""

    event_type: ClassVar[str] = "system.recovery.invoked"
    action: str
    target: str
    reason: str
    outcome: str
    result: dict[str, Any]
    operation_id: str | None = None


@dataclass(frozen=True)
class IncidentOpened(Payload):
    """incident.opened: a failed worker, a provider outage, a budget stop or a person opened an incident."""

    event_type: ClassVar[str] = "incident.opened"
    incident: dict[str, Any]


@dataclass(frozen=True)
class IncidentAcknowledged(Payload):
    """incident.acknowledged: someone took the incident on."""

    event_type: ClassVar[str] = "incident.acknowledged"
    incident: dict[str, Any]


@dataclass(frozen=True)
class IncidentEscalated(Payload):
    """incident.escalated: the incident was escalated to a role or a person (`escalated_to`)."""

    event_type: ClassVar[str] = "incident.escalated"
    incident: dict[str, Any]


@dataclass(frozen=True)
class IncidentResolved(Payload):
    """incident.resolved: the incident was resolved (by a person, or by the system when its cause
    cleared, e.g. a provider back up)."""

    event_type: ClassVar[str] = "incident.resolved"
    incident: dict[str, Any]


@dataclass(frozen=True)
class IncidentUpdated(Payload):
    """incident.updated: anything else that happened to an incident, by `change`: `status`
    (mitigated, closed), `severity`, `role` (assigned), `update` (a status update posted),
    `pin` (a message pinned to its timeline), `reminder` (no update for too long) or
    `retrospective` (the draft was written). `detail` says what exactly."""

    event_type: ClassVar[str] = "incident.updated"
    incident: dict[str, Any]
    change: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalRequested(Payload):
    """approval.requested: an agent's tool call waits for a person's decision (`approval`: agent,
    tool, arguments, risk, the policy that asks, the card's message id)."""

    event_type: ClassVar[str] = "approval.requested"
    approval: dict[str, Any]


@dataclass(frozen=True)
class ApprovalDecided(Payload):
    """approval.decided: a tool call was allowed or denied, by a person (approve, approve_thread,
    deny, deny_remember), by a rule (a remembered denial, a thread's approval, the policy never)
    or by the timeout; `approval.rule` says which rule applied."""

    event_type: ClassVar[str] = "approval.decided"
    approval: dict[str, Any]


@dataclass(frozen=True)
class ApprovalEscalated(Payload):
    """approval.escalated: an approval waited longer than `approvals.escalate_after_minutes` and
    was escalated to a role or a person (`approval.escalated_to`)."""

    event_type: ClassVar[str] = "approval.escalated"
    approval: dict[str, Any]


@dataclass(frozen=True)
class SystemHealthChanged(Payload):
    """system.health.changed: a component (a model provider, a connector, the store) changed
    health: ok, degraded or down."""

    event_type: ClassVar[str] = "system.health.changed"
    component: str
    status: str
    detail: str | None = None


# --- internal: in the log, sent to no client ------------------------------------------------


@dataclass(frozen=True)
class CredentialRevoked(Payload):
    """credential.revoked: internal, sent to no client. Access under `keys` ended in the same
    transaction: a session or an API token revoked, a sign-out, a new password (the person's id),
    a deactivation (every credential it revoked) or a new role (the person's id). Every gateway
    drops its cached credentials and closes the streams opened under those keys when the event
    reaches it, in its place in the log, so the read barrier covers sign-outs as it covers
    memberships (docs/deployment.md)."""

    event_type: ClassVar[str] = "credential.revoked"
    keys: list[str]


# --- notifications, presence and typing (live only: never in the log) ------------------------


@dataclass(frozen=True)
class NotificationCreated(Payload):
    """notification.created: live only, sent to one person's streams. A message they should hear
    about (`reason`: `mention`, `dm`, `reply` in a thread they started or replied to, or
    `message` in a channel whose level is `all`); `message` is a short form of it (id, thread,
    author, an excerpt of its text), with the channel's name and the thread's title."""

    event_type: ClassVar[str] = "notification.created"
    live_only: ClassVar[bool] = True
    reason: str
    message: dict[str, Any]
    channel_name: str
    thread_title: str


@dataclass(frozen=True)
class PresenceChanged(Payload):
    """presence.changed: live only. People whose presence changed, `{user_id: "active" | "away"}`
    (changes of one moment are sent together, at most about once a second)."""

    event_type: ClassVar[str] = "presence.changed"
    live_only: ClassVar[bool] = True
    users: dict[str, str]


@dataclass(frozen=True)
class TypingChanged(Payload):
    """typing.changed: live only. Who is typing now in the thread of the envelope (`thread_id`
    null: a new thread in the channel); sent when that set changes, at most about once a second."""

    event_type: ClassVar[str] = "typing.changed"
    live_only: ClassVar[bool] = True
    users: list[str]


# --- voice memos and spoken replies ------------------------------------------------------


@dataclass(frozen=True)
class VoiceMemoCreated(Payload):
    """voice.memo.created: a voice memo was posted (a person's recording, `kind` memo) or an agent
    began to speak its reply (`kind` speech); `memo` carries its id, message, duration, waveform
    peaks and status."""

    event_type: ClassVar[str] = "voice.memo.created"
    memo: dict[str, Any]


@dataclass(frozen=True)
class VoiceMemoTranscribed(Payload):
    """voice.memo.transcribed: a memo's transcript is ready (for a spoken reply: its whole audio is
    ready); `transcript` carries the text, segments with start and end times, language and model."""

    event_type: ClassVar[str] = "voice.memo.transcribed"
    memo: dict[str, Any]
    transcript: dict[str, Any]


@dataclass(frozen=True)
class VoiceMemoFailed(Payload):
    """voice.memo.failed: transcribing a memo (or speaking a reply) failed; `reason` says why. A
    person's recording stays playable."""

    event_type: ClassVar[str] = "voice.memo.failed"
    memo: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class VoiceMemoSpeech(Payload):
    """voice.memo.speech: one sentence of an agent's spoken reply is ready to play, while the reply
    may still stream; `clip` carries its index, text, duration and URL."""

    event_type: ClassVar[str] = "voice.memo.speech"
    memo_id: str
    message_id: str
    clip: dict[str, Any]


# --- memory (issue 12) ---------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryCandidateCreated(Payload):
    """memory.candidate.created: something an agent or a person's interaction could make into
    memory waits in the review queue; `candidate` carries its content, type, source and subject."""

    event_type: ClassVar[str] = "memory.candidate.created"
    candidate: dict[str, Any]


@dataclass(frozen=True)
class MemorySaved(Payload):
    """memory.saved: a memory was created, edited, merged into, rolled back or superseded;
    `change` says which (`created`, `edited`, `merged`, `rolled_back`, `invalidated`) and
    `candidate_id` names the candidate a review approved or merged, if any."""

    event_type: ClassVar[str] = "memory.saved"
    memory: dict[str, Any]
    change: str
    candidate_id: str | None = None


@dataclass(frozen=True)
class MemoryRejected(Payload):
    """memory.rejected: a reviewer rejected a candidate (with a reason), or its person opted out
    and it was withdrawn (`status` withdrawn)."""

    event_type: ClassVar[str] = "memory.rejected"
    candidate: dict[str, Any]


@dataclass(frozen=True)
class MemoryDeleted(Payload):
    """memory.deleted: a memory was deleted; only its tombstone (id, who, when) remains."""

    event_type: ClassVar[str] = "memory.deleted"
    memory_id: str
    deleted_by: str | None


def payload_types() -> dict[str, type[Payload]]:
    """Every payload class by event type; the docs test checks each is documented."""
    found: dict[str, type[Payload]] = {}
    stack = list(Payload.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.event_type:
            found[cls.event_type] = cls
    return found


@dataclass(slots=True)
class Event:
    """The envelope. `seq` is None until the store appends it (and stays None when live only)."""

    payload: Payload
    actor: Actor = SYSTEM
    org_id: str | None = None
    team_id: str | None = None
    channel_id: str | None = None
    thread_id: str | None = None
    idempotency_key: str | None = None
    event_id: str = field(default_factory=new_id)
    timestamp: str = field(default_factory=now_rfc3339)
    request_id: str | None = field(default_factory=current_request_id.get)
    seq: int | None = None
    encoded: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def event_type(self) -> str:
        return self.payload.event_type

    @property
    def live_only(self) -> bool:
        return self.payload.live_only

    def envelope(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.payload.event_type,
            "org_id": self.org_id,
            "team_id": self.team_id,
            "channel_id": self.channel_id,
            "thread_id": self.thread_id,
            "actor": {"kind": self.actor.kind, "id": self.actor.id},
            "timestamp": self.timestamp,
            "idempotency_key": self.idempotency_key,
            "request_id": self.request_id,
            "payload": self.payload,
        }

    def to_json(self) -> bytes:
        """The envelope as JSON, made once per event (after `seq` is set) and reused for the log
        and every subscriber."""
        if self.encoded is None:
            self.encoded = orjson.dumps(self.envelope())
        return self.encoded


def payload_dict(payload: Payload) -> dict[str, Any]:
    return dataclasses.asdict(payload)


_PAYLOADS: dict[str, type[Payload]] = {}


class UnknownEventType(ValueError):
    """An envelope names an event type this version does not know."""


def decode_event(body: bytes) -> Event:
    """The `Event` an envelope's JSON encodes (`Event.to_json`'s inverse): how a gateway rebuilds
    the events another gateway committed, from the shared bus or the log (issue 17). The body is
    kept as the encoding, so every subscriber is sent the bytes the log holds."""
    if not _PAYLOADS:
        _PAYLOADS.update(payload_types())
    envelope = orjson.loads(body)
    cls = _PAYLOADS.get(envelope["event_type"])
    if cls is None:
        raise UnknownEventType(envelope["event_type"])
    actor = envelope.get("actor") or {}
    return Event(
        payload=cls(**envelope["payload"]),
        actor=Actor(actor.get("kind", "system"), actor.get("id")),
        org_id=envelope.get("org_id"),
        team_id=envelope.get("team_id"),
        channel_id=envelope.get("channel_id"),
        thread_id=envelope.get("thread_id"),
        idempotency_key=envelope.get("idempotency_key"),
        event_id=envelope["event_id"],
        timestamp=envelope["timestamp"],
        request_id=envelope.get("request_id"),
        seq=envelope.get("seq"),
        encoded=bytes(body),
    )
