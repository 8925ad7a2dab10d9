"""The host contract: every hook a host calls, and the HostAPI a plugin calls back.

Spacebot (spacedriveapp/spacebot) has no plugin system: its hooks are compiled in (the
`PromptHook` methods of `SpacebotHook` in `src/hooks/spacebot.rs`), its processes talk through
the `ProcessEvent`s of `src/lib.rs`, and it shows the outside world only the `ApiEvent`s of its
`/api/events` stream (`src/api/state.rs`). These hooks follow those lifecycle points so that
every host calls them at the same moments: each docstring names the Spacebot event or trait
method it mirrors. They are not a one-to-one mirror:

- *stream* hooks have a counterpart on `/api/events`, so the bridge to a running Spacebot can
  call them too;
- *embedded only* hooks mirror a point Spacebot keeps inside its process (a trait method, a
  `ProcessEvent` that never reaches the API stream): only a host that runs the agent loop
  itself (the embedded host, the AG-UI host) can call them;
- *Spacechat's own* hooks have no Spacebot counterpart at all (server life cycle, health).

docs/hooks.md has the table. Hook names carry the `spacebot_` prefix; the marker project name is
"spacebot".

Rules every host follows (docs/hooks.md says more):

- Hooks take keyword arguments; an implementation names only those it uses.
- pluggy is synchronous: an implementation may return a value or an awaitable, and the host
  awaits every result (`await_me_maybe`). Hooks marked *firstresult* stop at the first
  implementation that returns something other than None.
- Ids are Spacechat's: `channel_id` and `thread_id` name where a conversation lives; a host that
  keys conversations otherwise (Spacebot's `portal:chat:...` ids) maps them.
- Within one turn the order is: inbound_message (per message) -> turn_started -> any of
  text_delta / reasoning_delta / tool calls / branches / workers / llm_usage -> exactly one of
  turn_completed or turn_failed.

This module imports nothing else of the package: it is a contract.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import pluggy

hookspec = pluggy.HookspecMarker("spacebot")
hookimpl = pluggy.HookimplMarker("spacebot")

T = TypeVar("T")

WorkerState = Literal["running", "waiting_for_input", "done", "failed"]
WorkerOutcome = Literal["succeeded", "partial", "cancelled", "timed_out", "blocked", "failed"]
# Spacebot's `TaskStatus` (src/tasks/store.rs), plus `deleted`: the status its `task_updated`
# event carries when a task is deleted (src/api/tasks.rs, delete_task).
TaskStatus = Literal["pending_approval", "backlog", "ready", "in_progress", "done", "failed", "deleted"]
HealthStatus = Literal["ok", "degraded", "down"]
ProcessType = Literal["channel", "branch", "worker", "compactor", "cortex"]

WORKER_STATES: tuple[str, ...] = ("running", "waiting_for_input", "done", "failed")
WORKER_OUTCOMES: tuple[str, ...] = ("succeeded", "partial", "cancelled", "timed_out", "blocked", "failed")
TASK_STATUSES: tuple[str, ...] = ("pending_approval", "backlog", "ready", "in_progress", "done", "failed", "deleted")
TASK_ACTIONS: tuple[str, ...] = (
    "approve",
    "reject",
    "assign",
    "start",
    "complete",
    "fail",
    "reopen",
    "edit",
    "comment",
)


class HostRefused(RuntimeError):
    """The system behind a host (a running Spacebot) refused a request the plugin made through
    the HostAPI. `status` is its HTTP status (0 when it could not be reached) and `answer` its
    own words, so the plugin can say who refused and why (a 502 naming Spacebot's answer)."""

    def __init__(self, system: str, status: int, answer: str) -> None:
        self.system, self.status, self.answer = system, status, answer
        reached = f"HTTP {status}" if status else "unreachable"
        super().__init__(f"{system} refused ({reached}): {answer}" if answer else f"{system} refused ({reached})")


async def await_me_maybe(value: T | Awaitable[T]) -> T:
    """Await `value` if it is awaitable; every hook result goes through here."""
    if inspect.isawaitable(value):
        return await value
    return value


def implementations(pm: pluggy.PluginManager, name: str) -> list[Any]:
    """A hook's implementations in the order pluggy calls them (wrappers are not used here)."""
    caller = getattr(pm.hook, name)
    return [impl for impl in reversed(caller.get_hookimpls()) if not (impl.hookwrapper or impl.wrapper)]


async def call_impl(impl: Any, kwargs: Mapping[str, Any]) -> Any:
    """Call one implementation with the arguments it names, and await what it returns."""
    return await await_me_maybe(impl.function(**{arg: kwargs[arg] for arg in impl.argnames}))


OnError = Callable[[str, Any, BaseException], None]


async def call_hook(
    pm: pluggy.PluginManager, name: str, *, on_error: OnError | None = None, **kwargs: Any
) -> list[Any]:
    """Call every implementation and await each result in turn; return the non-None results.

    pluggy is synchronous and its own `firstresult` stops at the first coroutine object (never
    None), so callers of async implementations go through here (or `first_hook`). With
    `on_error`, an implementation that raises is reported to it and skipped; without, it raises.
    """
    results = []
    for impl in implementations(pm, name):
        try:
            result = await call_impl(impl, kwargs)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(name, impl, exc)
            continue
        if result is not None:
            results.append(result)
    return results


async def first_hook(pm: pluggy.PluginManager, name: str, *, on_error: OnError | None = None, **kwargs: Any) -> Any:
    """A *firstresult* hook: the first implementation whose awaited result is not None."""
    for impl in implementations(pm, name):
        try:
            result = await call_impl(impl, kwargs)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(name, impl, exc)
            continue
        if result is not None:
            return result
    return None


class PluginHooks:
    """Calls Spacechat's own hooks (`spacechat_*`) on every registered plugin, handing each the
    SDK as `spacechat`; a failing plugin is reported and skipped. With no plugin manager (no
    host) every call returns at once. The composition root sets `sdk` once it is built."""

    def __init__(self, pm: pluggy.PluginManager | None, on_error: OnError) -> None:
        self.pm = pm
        self.sdk: Any = None
        self._on_error = on_error

    async def call(self, name: str, **kwargs: Any) -> list[Any]:
        if self.pm is None:
            return []
        return await call_hook(self.pm, name, on_error=self._on_error, spacechat=self.sdk, **kwargs)

    async def first(self, name: str, **kwargs: Any) -> Any:
        if self.pm is None:
            return None
        return await first_hook(self.pm, name, on_error=self._on_error, spacechat=self.sdk, **kwargs)


# ============================================================================================
# Capabilities a serving host may offer in the ASGI scope
# ============================================================================================

DIRECT_WRITE = "spacebot.direct_write"
"""An ASGI scope extension (`scope["extensions"][DIRECT_WRITE]`) that a host serving HTTP may
set on every `http` request: `{"open": Callable[[], Callable[[bytes], bool] | None]}`. Once the
response has started, `open()` returns a synchronous writer of one body chunk, or None when the
response cannot be written that way. The writer answers False (and writes nothing) when the
transport cannot take bytes now (back-pressure, a closed connection); the caller then sends the
usual ASGI way. Event streams use it to write pre-encoded frames from the fan-out itself, with
no task wake and no trip through each middleware's `send` (PERFORMANCE.md). A host that does not
offer it changes nothing but speed. `spacechat serve` offers it on the uvicorn versions it is
tested with (host/fastpath.py).

A host may also offer `"park": Callable[[on_writable, on_closed], tuple[write, end, abort] |
None]` (#16): it takes the started, chunked response's connection over so the app may return
while the response goes on. `write(chunk) -> bool` as above; `end()` writes the last chunk and
closes (behind a full socket it drops the connection instead); `abort()` drops it now (a reset,
what the socket holds discarded); the host calls `on_writable()` when back-pressure ends and
`on_closed()` when the client leaves (never after `end()` or `abort()`). A host may answer
`(write, end)`: a stalled stream is then ended with `end()`. It may also answer `(write, end,
abort, beat)`: `beat(seconds)` is called once per realtime.heartbeat_seconds with
realtime.stall_seconds, and when the client has acknowledged nothing for that long while what
was sent to it is retransmitted (gone without a word: no FIN, no reset), the host drops the
connection and calls `on_closed()`. None: it cannot now, and the app keeps the response
itself. Event streams park once caught up, so an idle one costs no task and no ASGI call chain.

And `"abort": Callable[[], None]`: drop the request's connection now. A stream whose client
took nothing for realtime.stall_seconds is dropped with it; without it the app only returns,
and the host closes the connection as it would (which may wait on the client)."""

WEBSOCKET_PARK = "spacebot.websocket_park"
"""An ASGI scope extension (`scope["extensions"][WEBSOCKET_PARK]`) that a host serving WebSockets
may set on every `websocket` scope: `{"park": Callable[[on_writable, on_closed, on_text],
tuple[write, end, beat, abort] | None], "abort": Callable[[], None]}` (#16). Once the WebSocket
is accepted, `park` takes its connection over so the app may return (and stop reading) while
the connection goes on; None: it cannot now (back-pressure, the client gone, or an extension
such as per-message-deflate was negotiated), and the app keeps the WebSocket itself.

- `write(frames: bytes) -> bool`: whole WebSocket frames, unmasked and uncompressed (the caller
  makes them once and writes the same bytes to many connections), now; False (nothing written)
  while back-pressure holds or once the connection is ending; the host then calls
  `on_writable()` when it drains.
- `end(code: int)`: a close frame with this code, then the closing handshake; the host closes
  the socket when the client answers, or drops it after a timeout.
- `abort()`: drop the connection now (a reset, what the socket holds discarded): a client that
  took nothing for realtime.stall_seconds. A host may answer `(write, end, beat)`; the stream is
  then ended with `end`. The scope's `"abort"` does the same for a WebSocket not parked.
- `beat()`: called once per realtime.heartbeat_seconds (every other heartbeat tick), busy or
  idle: the host sends a protocol ping, and when the one it sent at the beat before is still
  unanswered (and the socket is not backed up), it fails the connection (1011) as a dead peer
  and calls `on_closed()`.
- `on_text(text: str) -> bytes | None`: each complete text message from the client; frames it
  returns are written back (the stream answers its `ping` with `{"type":"pong"}`). Protocol
  pings are answered by the host; binary messages are dropped.
- `on_closed()`: the client closed (its close frame answered) or left, or `beat` found it dead;
  never after `end()` or `abort()`.

A host that does not offer it changes nothing but memory: the WebSocket keeps its task.
`spacechat serve` offers it on the uvicorn versions it is tested with, for uvicorn's
websockets-sansio protocol (host/fastpath.py)."""


# ============================================================================================
# The HostAPI: what a plugin may ask of the host that runs the agents
# ============================================================================================


@runtime_checkable
class HostAPI(Protocol):
    """Implemented by every host (the embedded host, the bridge). All methods are coroutines;
    each raises `LookupError` for an unknown agent, channel or provider and `RuntimeError` when
    the host cannot do it now."""

    name: str  # "embedded", "bridge", ...
    pm: pluggy.PluginManager  # the host's plugin manager: plugins call each other's hooks through it

    def agents(self) -> list[dict[str, Any]]:
        """The agents this host runs: `{id, name, model, provider, channels: [channel names]}`."""
        ...

    def status(self) -> dict[str, Any]:
        """What runs now, per agent: `{agents: [{id, model, provider, health, queue: {channel_id:
        waiting turns}, running: {channel_id: turn_id}, workers: [{worker_id, channel_id, thread_id,
        task, state}]}]}`."""
        ...

    async def deliver_message(
        self,
        *,
        channel: Mapping[str, Any],
        thread_id: str,
        message: Mapping[str, Any],
        mentions: Sequence[str],
        skip: Sequence[str] = (),
    ) -> list[str]:
        """Hand a person's message to the agents that should see it: those bound to `channel`
        (by name) and those named in `mentions` (agent ids), except those in `skip` (e.g. paused
        by a budget). Return the ids of the agents that took it; each then calls
        spacebot_inbound_message and starts (or joins) a turn."""
        ...

    async def retry_turn(
        self,
        *,
        channel_id: str,
        thread_id: str | None = None,
        agent_id: str | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """Run the last turn of a channel (or one thread of it) again from the same input. When the
        host no longer has that turn (it restarted), `agent_id` and `messages` (`{id, text,
        author}`, the turn's input as stored) let it run the same input anyway. Return `{turn_id,
        agent_id, thread_id, retried_turn_id, message_ids}`."""
        ...

    async def stop_turn(self, *, turn_id: str, agent_id: str, channel_id: str, thread_id: str) -> dict[str, Any]:
        """Stop a running turn at once (a person pressed Stop on the reply): cancel its model
        request, its workers and branches, report the usage of the request it cut (estimated when
        the provider had not said yet), and end the turn with `spacebot_turn_completed` carrying
        the text written so far; a host that can only fail it may call `spacebot_turn_failed`,
        and the plugin still ends the reply as stopped. Return when the turn has ended, with
        `{turn_id, stopped: True, ...}`; raise LookupError when the turn is not running."""
        ...

    async def restart_agent(self, *, agent_id: str) -> dict[str, Any]:
        """Restart every channel process of one agent (queued messages are kept)."""
        ...

    async def restart_worker(self, *, channel_id: str) -> dict[str, Any]:
        """Stop the channel's turn loop and its workers and start it again. Return a summary."""
        ...

    async def reconnect_provider(self, *, name: str) -> dict[str, Any]:
        """Drop and re-open the connection to a model provider; return `{provider, status}`."""
        ...

    async def recover_instance(self) -> dict[str, Any]:
        """Cancel stuck turns and workers and restart every loop; return a summary."""
        ...

    async def save_memory(self, *, agent_id: str, memory: Mapping[str, Any]) -> str:
        """Write a memory (`content`, `memory_type`, `importance`, `source`) to the agent's memory
        store without asking `spacebot_before_memory_save` again. Return the memory id.

        With a `key` (Spacechat's memory id) and a `revision`, saving is idempotent: a key the
        host already holds at that revision returns the same id and writes nothing; a newer
        revision replaces the content under the same id (an edit, a merge, a rollback). So a
        plugin may retry a delivery and the agent still remembers it exactly once."""
        ...

    async def forget_memory(self, *, agent_id: str, key: str) -> bool:
        """Remove the memory saved with `key` from the agent's store (deleted, superseded or purged
        in Spacechat). Return False when the host held no such memory."""
        ...

    async def deliver_interaction(self, *, agent_id: str, interaction: Mapping[str, Any]) -> None:
        """Hand a structured interaction (a button, a form, a vote) to the agent."""
        ...

    async def task_action(
        self,
        *,
        source: str,
        number: int,
        action: str,
        actor: Mapping[str, Any],
        changes: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Act on a task that the host's system owns and Spacechat mirrors (`source` "spacebot":
        Spacebot's task number `number`), so the owner stays the source of truth. `action` is one
        of TASK_ACTIONS; `actor` is `{kind, id, name}` of who acts; `changes` carries what the
        action needs (`assignee_id`, `reason`, `title`, `description`, `priority`, `text` of a
        comment). Return `{"task": the task as the owner now has it}` (and `"comment"` for a
        comment). Raise `LookupError` for a source this host has no tasks of (the embedded host
        has none) and `HostRefused` when the owner refuses."""
        ...


# ============================================================================================
# Host life cycle
# ============================================================================================


@hookspec
def spacebot_startup(host: HostAPI, config: Mapping[str, Any]) -> Awaitable[None] | None:
    """Called once when the host starts, before it serves requests or runs any turn.
    Spacechat's own (Spacebot starts its processes in `main.rs`, with no hook).

    :param host: the HostAPI of the running host, for calling back.
    :param config: the plugin's `[config]` table as the host read it (the manifest's defaults
        are applied by the plugin).
    """


@hookspec
def spacebot_server_started(url: str) -> None:
    """Called when the host's HTTP server listens, with the base URL it really bound (a port of 0
    becomes the chosen port). Synchronous; must not block. Plugins print or build links with it."""


@hookspec
def spacebot_server_stopping() -> None:
    """Called when the host's HTTP server starts to shut down, before it waits for open
    connections to finish: end long-lived responses (event streams, WebSockets) here, or the
    server waits for them. Synchronous; must not block."""


@hookspec
def spacebot_shutdown() -> Awaitable[None] | None:
    """Called once when the host stops, after the server stopped and the last turn ended;
    release everything."""


@hookspec
def spacebot_register_routes() -> list[Any] | None:
    """Called after startup: return Starlette routes (`Route`, `Mount`, `WebSocketRoute`) to
    mount on the host's HTTP server. The host mounts them in plugin registration order.
    Spacechat's own (Spacebot's routes are compiled into `src/api/server.rs`)."""


@hookspec
def spacebot_health_changed(component: str, status: HealthStatus, detail: str | None) -> Awaitable[None] | None:
    """Called when a part of the host changes health. Spacechat's own; the bridge derives it
    from Spacebot's `GET /api/health`.

    :param component: `provider:<name>`, `connector:<name>` or `host`.
    :param status: `ok`, `degraded` or `down`.
    :param detail: a human-readable reason, never a secret.
    """


@hookspec
def spacebot_connector_status(connector: str, status: str, detail: str | None) -> Awaitable[None] | None:
    """Called when a messaging connector (Slack, Discord, the bridge's link) connects,
    disconnects or fails. `status` is `connected`, `disconnected` or `error`. Spacechat's own
    (Spacebot's adapters report only through `Messaging::health_check`)."""


# ============================================================================================
# Messages and turns (Spacebot: inbound_message, typing_state, TextDelta, outbound_message)
# ============================================================================================


@hookspec
def spacebot_inbound_message(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    message_id: str | None,
    sender: Mapping[str, Any],
    text: str,
) -> Awaitable[None] | None:
    """Called when a message reaches an agent's channel process, before any turn on it.
    Stream: Spacebot's `inbound_message` (`ApiEvent::InboundMessage`, also for its system
    messages, `ProcessEvent::ChannelSystemMessage`).

    :param message_id: the Spacechat message id, or None for a message that came from another
        adapter (a plugin may record it).
    :param sender: `{kind: "user" | "agent" | "system", id, name}`; `system` for a message
        Spacebot itself put into the conversation (an autonomy briefing).
    """


@hookspec(firstresult=True)
def spacebot_transcribe_audio(
    agent_id: str, channel_id: str, thread_id: str, message_id: str | None, audio: Mapping[str, Any]
) -> Awaitable[str | None] | str | None:
    """*firstresult*. Called when an inbound message carries recorded speech (a voice memo), before
    it becomes the input of the agent's turn: return the text the agent reads in its place (the
    transcript), or None when this plugin has none. The host uses the first text returned, and the
    message's own text when no plugin answers.

    Mirrors Spacebot's `transcribe_audio_attachment` (`src/agent/channel/attachments.rs`): Spacebot
    transcribes each audio attachment of an inbound message before the channel prompts the model,
    and the model reads the transcript. Here the plugin owns the speech models, so the host asks.

    :param message_id: the Spacechat message that carries the audio.
    :param audio: `{memo_id, content_type, duration_ms, url}` of the recording.
    """


@hookspec
def spacebot_turn_started(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    model: str,
    provider: str,
    message_ids: Sequence[str],
) -> Awaitable[None] | None:
    """Called when an agent starts a turn. Stream: `typing_state` with `is_typing: true`
    (`StatusUpdate::Thinking`); Spacebot has no turn ids, a host makes them.

    :param turn_id: unique per turn; every later hook of the turn carries it.
    :param message_ids: the inbound messages coalesced into this turn, oldest first.
    """


@hookspec
def spacebot_text_delta(agent_id: str, turn_id: str, delta: str, aggregated_text: str) -> Awaitable[None] | None:
    """Called for each piece of the agent's reply text as it streams. Stream:
    `outbound_message_delta` (`ProcessEvent::TextDelta`, `PromptHook::on_text_delta`).

    :param delta: the new text.
    :param aggregated_text: the whole reply so far, ending with `delta`.
    """


@hookspec
def spacebot_reasoning_delta(agent_id: str, turn_id: str, delta: str) -> Awaitable[None] | None:
    """Called for each piece of the model's reasoning, when the provider streams it. Stream:
    `reasoning_delta` (fields `reasoning_delta`, `aggregated_reasoning`; `ProcessEvent::ReasoningDelta`)."""


@hookspec
def spacebot_turn_completed(
    agent_id: str,
    turn_id: str,
    text: str,
    blocks: Sequence[Mapping[str, Any]] | None,
    ttft_ms: int | None,
    duration_ms: int,
) -> Awaitable[None] | None:
    """Called once when a turn ends well. Stream: the reply (`outbound_message`) or else
    `typing_state` with `is_typing: false` (`StatusUpdate::StopTyping`).

    :param text: the final reply text (equal to the last `aggregated_text`).
    :param blocks: a card to attach to the reply, or None.
    :param ttft_ms: time from turn start to the first text delta; None when no text streamed.
    :param duration_ms: turn start to end.
    """


@hookspec
def spacebot_turn_failed(
    agent_id: str, turn_id: str, error: str, retryable: bool, duration_ms: int
) -> Awaitable[None] | None:
    """Called once when a turn ends in error (provider failure, timeout, cancellation).
    Stream: Spacebot has no error event; a failed model call sends the reply text "I encountered
    an error: ..." (`Channel::run_turn` in `src/agent/channel.rs`) and a host reads it as this.

    :param error: a human-readable message with no secret in it.
    :param retryable: whether running the turn again may succeed.
    """


@hookspec
def spacebot_outbound_message(
    agent_id: str,
    channel_id: str,
    thread_id: str | None,
    text: str,
    blocks: Sequence[Mapping[str, Any]] | None,
) -> Awaitable[str | None] | str | None:
    """Called when an agent posts a whole message outside a streamed reply (a notice, a card,
    a cron result). Stream: `outbound_message` outside a turn. `thread_id` None opens a new
    thread. A plugin that stores it returns the message id."""


# ============================================================================================
# Tools (Spacebot: on_tool_call, ToolStarted, ToolCompleted)
# ============================================================================================


@hookspec(firstresult=True)
def spacebot_before_tool_call(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    arguments: Mapping[str, Any],
) -> Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None:
    """*firstresult*. Called before every tool call, while the agent's turn waits. Embedded
    only: it mirrors `PromptHook::on_tool_call`, whose `HookAction` Spacebot decides inside its
    process; its API stream only reports the call after the fact.

    Return None to let the call run, `{"decision": "allow", "reason": str}` when people approved
    it (the call runs, and the agent's own permission prompt for the tool is not asked again),
    or `{"decision": "deny" | "skip", "reason": str}` to stop it (the agent sees the reason as
    the tool's result). An awaitable may take as long as a human decision takes: the worker is
    `waiting_for_input` meanwhile.
    """


@hookspec
def spacebot_tool_started(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    arguments: Mapping[str, Any],
) -> Awaitable[None] | None:
    """Called when a tool call starts (after spacebot_before_tool_call let it). Stream:
    `tool_started` (`ProcessEvent::ToolStarted`). Spacebot's channel-process routing tools
    (`reply`, `react`, `skip`, `set_outcome`, `spawn_worker`, `branch`, `route`, `cancel`) are
    not tool runs for people: hosts do not call this for them, as Spacebot's own UI hides them
    (`is_hidden_channel_tool` in `src/api/state.rs`)."""


@hookspec
def spacebot_tool_completed(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    result: str,
    duration_ms: int,
) -> Awaitable[None] | None:
    """Called when a tool call returns. Stream: `tool_completed` (`ProcessEvent::ToolCompleted`,
    `PromptHook::on_tool_result`). `result` is capped by the host (Spacebot caps tool output);
    it never carries a secret."""


@hookspec
def spacebot_tool_failed(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    error: str,
    duration_ms: int,
) -> Awaitable[None] | None:
    """Called when a tool call raises, is denied or is skipped; `error` says which. Stream:
    `tool_completed` whose result starts `Toolset error:` (how `SpacebotHook` reports a tool
    error)."""


@hookspec
def spacebot_tool_output(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    line: str,
    stream: str,
) -> Awaitable[None] | None:
    """Called for each line a running tool prints (a shell's stdout or stderr), between its
    tool_started and tool_completed. Stream: `tool_output` (`ProcessEvent::ToolOutput`; Spacebot
    calls it ephemeral: lines may be dropped, the whole output is in tool_completed).

    :param stream: `stdout` or `stderr`, as the tool names it.
    """


# ============================================================================================
# Branches and workers (Spacebot: BranchStarted, BranchResult, Worker*)
# ============================================================================================


@hookspec
def spacebot_branch_started(
    agent_id: str, channel_id: str, thread_id: str, branch_id: str, description: str
) -> Awaitable[None] | None:
    """Called when a channel process forks a branch to think. Stream: `branch_started`."""


@hookspec
def spacebot_branch_completed(
    agent_id: str, channel_id: str, thread_id: str, branch_id: str, conclusion: str
) -> Awaitable[None] | None:
    """Called when a branch returns its conclusion to the channel. Stream: `branch_completed`
    (`ProcessEvent::BranchResult`)."""


@hookspec
def spacebot_worker_started(
    agent_id: str,
    channel_id: str | None,
    thread_id: str | None,
    worker_id: str,
    task: str,
    worker_type: str,
    interactive: bool,
) -> Awaitable[None] | None:
    """Called when a worker starts; its state is `running`. Stream: `worker_started` (with
    `interactive`)."""


@hookspec
def spacebot_worker_status(agent_id: str, worker_id: str, state: WorkerState, status: str) -> Awaitable[None] | None:
    """Called when a worker reports progress or changes state. Stream: `worker_status`
    (JSON type `worker_status_update`).

    :param state: one of WORKER_STATES.
    :param status: the worker's own short status line (at most 256 characters).
    """


@hookspec
def spacebot_worker_idle(agent_id: str, worker_id: str) -> Awaitable[None] | None:
    """Called when an interactive worker waits for input (state `waiting_for_input`). Stream:
    `worker_idle`."""


@hookspec
def spacebot_worker_completed(
    agent_id: str, worker_id: str, outcome: WorkerOutcome, result: str, success: bool
) -> Awaitable[None] | None:
    """Called once when a worker ends. Stream: `worker_completed` (`ProcessEvent::WorkerComplete`;
    a cancelled worker's result starts `Worker cancelled`).

    :param outcome: one of WORKER_OUTCOMES; `success` is true for succeeded and partial.
    """


@hookspec
def spacebot_worker_permission_asked(
    agent_id: str, worker_id: str, permission_id: str, description: str, patterns: Sequence[str]
) -> Awaitable[None] | None:
    """Called when a worker asks permission for an action. Embedded only: Spacebot's
    `ProcessEvent::WorkerPermission` never reaches its API stream. The AG-UI host calls it for
    a run's tool-approval interrupt."""


@hookspec
def spacebot_worker_question_asked(
    agent_id: str, worker_id: str, question_id: str, questions: Sequence[Mapping[str, Any]]
) -> Awaitable[None] | None:
    """Called when a worker asks a question (`questions`: `{question, header, options:
    [{label, description}]}`). Embedded only: Spacebot's `ProcessEvent::WorkerQuestion` never
    reaches its API stream. The AG-UI host calls it for a run's other interrupts."""


@hookspec
def spacebot_process_text(
    agent_id: str,
    channel_id: str | None,
    thread_id: str | None,
    process_type: ProcessType,
    process_id: str,
    text: str,
) -> Awaitable[None] | None:
    """Called when a worker or a branch says something between its tool calls (once per model
    response, the whole text). Stream: `process_text` (`ProcessEvent::ProcessText`, sent by
    `PromptHook::on_completion_response`).

    :param process_type: `worker` or `branch`; `process_id` is its worker or branch id.
    """


@hookspec
def spacebot_status_update(
    agent_id: str, channel_id: str, thread_id: str, turn_id: str | None, status: str
) -> Awaitable[None] | None:
    """Called when an agent reports what it is doing in a short status line (a step of a run).
    Embedded only: Spacebot's `ProcessEvent::StatusUpdate` (`SpacebotHook::send_status`) feeds
    its status block, not its API stream. The AG-UI host calls it for `STEP_STARTED` and
    `STEP_FINISHED`."""


# ============================================================================================
# Conversations: compaction, and agents talking to each other
# ============================================================================================


@hookspec
def spacebot_compaction_started(agent_id: str, channel_id: str, thread_id: str, kind: str) -> Awaitable[None] | None:
    """Called when a conversation's context starts being compacted (summarised to fit the model).
    Stream: `compaction_started` (`ProcessEvent::CompactionStarted`).

    :param kind: Spacebot's kind of compaction (e.g. `background`, `aggressive`, `emergency`).
    """


@hookspec
def spacebot_compaction_completed(
    agent_id: str, channel_id: str, thread_id: str, success: bool
) -> Awaitable[None] | None:
    """Called when a compaction ends. Stream: `compaction_completed`
    (`ProcessEvent::CompactionCompleted`)."""


@hookspec
def spacebot_agent_message(
    from_agent_id: str, to_agent_id: str, link_id: str, link_channel: str, direction: str
) -> Awaitable[None] | None:
    """Called when one agent sends a message to another over a link, and when the other
    receives it. Stream: `agent_message_sent` / `agent_message_received`
    (`ProcessEvent::AgentMessageSent` / `AgentMessageReceived`).

    :param link_channel: Spacebot's id of the link's conversation (not a Spacechat channel:
        agent-to-agent conversations have no Spacechat thread).
    :param direction: `sent` or `received`.
    """


# ============================================================================================
# Usage
# ============================================================================================


@hookspec
def spacebot_llm_usage(
    agent_id: str,
    channel_id: str | None,
    thread_id: str | None,
    turn_id: str | None,
    process_type: ProcessType,
    model: str,
    provider: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
    cost_usd: float | None,
) -> Awaitable[None] | None:
    """Called once per LLM request with its token usage (Spacebot's `ExtendedUsage`). Spacebot
    keeps per-request usage inside its process; the bridge reports the increases of its
    `GET /api/usage` (per agent and model) and `GET /api/usage/conversation/{id}` (per thread)
    instead, one call per increase, with `turn_id` None.

    `input_tokens` excludes cache reads and writes; `cost_usd` is None when the host does not
    price the model (a plugin may price it from its own table).
    """


@hookspec
def spacebot_completion_call(
    agent_id: str,
    channel_id: str | None,
    thread_id: str | None,
    turn_id: str | None,
    process_type: ProcessType,
    model: str,
    provider: str,
) -> Awaitable[None] | None:
    """Called just before each model request. Embedded only: it mirrors
    `PromptHook::on_completion_call` of Spacebot's `SpacebotHook`, which has no event."""


@hookspec
def spacebot_completion_response(
    agent_id: str,
    channel_id: str | None,
    thread_id: str | None,
    turn_id: str | None,
    process_type: ProcessType,
    model: str,
    provider: str,
    duration_ms: int,
    error: str | None,
) -> Awaitable[None] | None:
    """Called when a model request ends, well (`error` None) or not. Embedded only: it mirrors
    `PromptHook::on_completion_response` (and `on_stream_completion_response_finish`)."""


# ============================================================================================
# Memory
# ============================================================================================


@hookspec(firstresult=True)
def spacebot_before_memory_save(
    agent_id: str, channel_id: str | None, memory: Mapping[str, Any]
) -> Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None:
    """*firstresult*. Called before an agent saves a memory (`content`, `memory_type`,
    `importance`, `source`; a host that knows them adds `thread_id`, `turn_id` and `message_ids`,
    the turn's inbound messages, so a plugin can tell whose words the memory came from).
    Embedded only (Spacebot's `memory_save` tool decides inside its process).

    Return None to save it now, `{"action": "review", "candidate_id": str}` when the plugin
    queued it for human review (the host does not save it; the plugin will call
    HostAPI.save_memory if approved), `{"action": "saved", "memory_id": str}` when the plugin
    saved it itself through HostAPI.save_memory (the host does not save it again), or
    `{"action": "reject", "reason": str}`.
    """


@hookspec
def spacebot_memory_saved(
    agent_id: str,
    channel_id: str | None,
    memory_id: str,
    memory_type: str,
    importance: float,
    content_summary: str,
) -> Awaitable[None] | None:
    """Called after a memory was written to the agent's store. Embedded only: Spacebot's
    `ProcessEvent::MemorySaved` goes to its memory bus, not its API stream."""


@hookspec
def spacebot_memory_recalled(
    agent_id: str, channel_id: str | None, query: str, memory_ids: Sequence[str]
) -> Awaitable[None] | None:
    """Called when an agent's recall returned memories for a turn. Embedded only (Spacebot
    recalls inside its channel process, with no event)."""


# ============================================================================================
# Tasks
# ============================================================================================


@hookspec
def spacebot_task_updated(
    agent_id: str | None, task_number: int, status: TaskStatus, action: str, task: Mapping[str, Any]
) -> Awaitable[None] | None:
    """Called when a Spacebot task is created, changes or is deleted (`action`: created,
    updated, deleted). Stream: `task_updated` (`ApiEvent::TaskUpdated`). `task` is the task as
    Spacebot's `GET /api/tasks/{n}` returns it (`src/tasks/store.rs` `Task`): Spacebot stays the
    source of truth, and a plugin that mirrors it applies `status` as given, without its own
    transition rules. On deletion `status` is `deleted` and `task` the last copy the host saw
    (or just `{task_number, status}`)."""


@hookspec
def spacebot_task_revised(
    agent_id: str | None,
    task_number: int,
    revision: int,
    restored_from: int | None,
    summary: Mapping[str, Any] | None,
) -> Awaitable[None] | None:
    """Called when a Spacebot task's specification was edited and a revision recorded. Stream:
    `task_revised` (`ApiEvent::TaskRevised`). `summary` is the revision as
    `GET /api/tasks/{n}/revisions/{r}` returns it (`author_type`, `author_id`, `source`,
    `edit_summary`, `created_at`; `src/tasks/revisions.rs`), or None when it could not be read.
    """


@hookspec
def spacebot_task_commented(
    agent_id: str | None, task_number: int, comment: Mapping[str, Any]
) -> Awaitable[None] | None:
    """Called when a comment was added to a Spacebot task. Stream: `task_commented`
    (`ApiEvent::TaskCommented`). `comment` is Spacebot's `TaskComment` (`seq`, `id`,
    `author_type`, `author_id`, `body`, `created_at`; `src/tasks/comments.rs`)."""


# ============================================================================================
# Spacechat's own hooks: called by the Spacechat plugin, for hook plugins (hooks/)
# ============================================================================================


@hookspec
def spacechat_ready(spacechat: Any) -> Awaitable[None] | None:
    """Called once Spacechat has started, with its plugin API (`spacechat_plugin.sdk.SpacechatAPI`):
    post messages and cards, wait for interactions, act on tasks, keep small state. A hook plugin
    keeps the object for use in its other hooks."""


@hookspec
def spacechat_task_changed(
    spacechat: Any, task: Mapping[str, Any], previous_status: str | None, change: str
) -> Awaitable[None] | None:
    """Called after a Spacechat task was created or changed (`change`: created, status, edited,
    assigned); `previous_status` is None on creation."""


@hookspec(firstresult=True)
def spacechat_interaction_submitted(
    spacechat: Any, interaction: Mapping[str, Any], message: Mapping[str, Any]
) -> Awaitable[bool | None] | bool | None:
    """*firstresult*. Called after an interaction on a card was validated and recorded. Return
    True when this plugin handled it: the card's agent then does not also receive it."""


@hookspec
def spacechat_reaction_changed(
    spacechat: Any, reaction: Mapping[str, Any], message: Mapping[str, Any]
) -> Awaitable[None] | None:
    """Called after someone added or took back a reaction on a message (its `reaction.added` or
    `reaction.removed` event is already out). `reaction` is `{message_id, channel_id, thread_id,
    emoji, action: added | removed, user: {kind, id, name}, agent_id, reactions}`: `agent_id` is
    the message's author when an agent wrote it (else None), `reactions` the message's summary
    after the change. A reaction on an agent's reply is feedback on it (as Slack assistants get
    thumbs up and down); a host hands it to that agent (the embedded host puts it in the thread's
    context for the agent's next turn)."""
