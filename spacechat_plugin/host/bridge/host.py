"""The bridge host: Spacechat in front of a running Rust Spacebot, over Spacebot's HTTP API.

Why: a team that already runs Spacebot (its agents, tasks, memories and connectors) gets
Spacechat's chat surface without moving its agents into Python. The bridge implements the same
HostAPI as the embedded host and calls the same hooks at the same moments, so nothing above
`host/` can tell which host runs (DESIGN.md, "The host contract").

How it talks to Spacebot (`src/api/` of spacedriveapp/spacebot):

- messages go out with `POST /api/portal/send`, which is fire-and-forget: the reply arrives later
  on the event stream, with `channel_id` equal to the session id we sent;
- `GET /api/events` is read as Server-Sent Events, dispatched on the SSE event *name*, because
  the JSON `type` differs from it for some events (`worker_status` carries `worker_status_update`);
- `/api/health`, `/api/usage` and `/api/usage/conversation/{id}` are polled every
  `bridge.poll_seconds` (sync.py); tasks are read and acted on through `/api/tasks/...`
  (tasks.py); workers are stopped with `POST /api/channels/cancel-process`;
- after a `lagged` frame or a reconnection, open conversations are backfilled from
  `/api/portal/history` (sync.py), because Spacebot's stream has no replay.

Every request carries `Authorization: Bearer <token>`. The token is never logged, never put in a
hook argument and never in an error message.

Conversations map without state: Spacechat's (channel_id, thread_id) for agent A is Spacebot's
portal session `portal:chat:{A}:{channel_id}:{thread_id}`, parsed back from the right so that an
agent id containing a colon still parses. Events of any other conversation (`discord:...`,
`slack:...`, a portal chat opened in Spacebot's own UI, an agent not configured here) are
ignored: they have no Spacechat thread to land in, and the host contract has no call that creates
one. The `inbound_message` echo of what `deliver_message` sent is skipped (it already called
`spacebot_inbound_message`); Spacebot's system messages and messages typed into the conversation
elsewhere are passed on.

Turns: Spacebot has no turn ids. A turn opens when its typing indicator turns on (or at the first
streamed text when that was missed) and ends at the reply (`outbound_message`) or, failing that,
when typing turns off, with the text streamed so far (empty when the agent chose not to reply,
as the embedded host completes a turn whose model said nothing). An `outbound_message` outside a
turn is a whole message (`spacebot_outbound_message`); a reply "I encountered an error: ..." is a
failed turn (Spacebot's only sign of a failed model call). Timings are measured here.

What the bridge cannot do (docs/bridge.md): save a memory (Spacebot's API has no route for it),
ask `spacebot_before_tool_call` (Spacebot's hooks are compiled in), report memory saves and
recalls or worker permission and question prompts (Spacebot keeps them off its event stream),
and tie token usage to a turn (Spacebot reports usage as totals per agent and model, and per
conversation).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import pluggy

from ...config import Settings
from ...events import new_id, now_rfc3339
from ..hooks import HookRunner
from ..sse import SSEParser
from .conversations import MODEL, PROVIDER, Ask, Conversation, ConversationState, Input, Payload, reason
from .events import BridgeEvents
from .sync import BridgeSync
from .tasks import BridgeTasks

log = logging.getLogger("spacechat.host.bridge")

CONNECTOR = "spacebot"
COMPONENT = f"connector:{CONNECTOR}"
FIRST_RETRY_SECONDS = 0.25
CONNECT_WAIT_SECONDS = 5.0
MAX_CONVERSATIONS = 10_000
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=15)
# Spacebot sends a keep-alive comment every 15 s: silence for three of them means a dead link.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=45)


class BridgeHost(BridgeEvents, BridgeSync, BridgeTasks):
    name = "bridge"

    def __init__(self, settings: Settings, pm: pluggy.PluginManager, raw_config: Mapping[str, Any]) -> None:
        self.settings = settings
        self.pm = pm
        self.raw_config = raw_config
        self.hooks = HookRunner(pm)
        self.config = settings.bridge
        self.agents_by_id = {agent.id: agent for agent in settings.agents}
        self.conversations: OrderedDict[Conversation, ConversationState] = OrderedDict()
        self.worker_homes: dict[str, Conversation] = {}
        self.tool_calls: dict[tuple[str, str], list[tuple[str, float]]] = {}
        self.tasks_seen: dict[int, dict[str, Any]] = {}
        self.questions: OrderedDict[str, Ask] = OrderedDict()
        self.usage_seen: dict[tuple[str, str], dict[str, float]] = {}
        self.usage_rest: dict[str, dict[str, float]] = {}
        self.usage_models: dict[str, str] = {}
        self.usage_enabled = True
        self.ever_connected = False
        self.link_status: str | None = None
        self.health = "ok"
        self.started_at = now_rfc3339()
        self._connected = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._link: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        # One event at a time: the stream's, a backfill's and the watchdog's never interleave.
        self._events_lock = asyncio.Lock()
        self._conversation_events = self._handlers()
        self._instance_events: dict[str, Callable[[Payload], Awaitable[None]]] = {
            "task_updated": self._on_task_updated,
            "task_revised": self._on_task_revised,
            "task_commented": self._on_task_commented,
            "agent_message_sent": self._on_agent_message,
            "agent_message_received": self._on_agent_message,
            "lagged": self._on_lagged,
        }

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.started_at = now_rfc3339()
        token = self.config.token
        self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            await self.hooks.must("spacebot_startup", host=self, config=self.raw_config)
        except BaseException:
            await self._session.close()
            raise
        self._link = asyncio.create_task(self._run_link(), name="spacebot event stream")
        self._poller = asyncio.create_task(self._run_polls(), name="spacebot polls")

    def routes(self) -> list[Any]:
        found: list[Any] = []
        for result in self.pm.hook.spacebot_register_routes():
            found.extend(result or [])
        return found

    async def stop(self) -> None:
        for task in (self._poller, self._link):
            await _cancel(task)
        self._poller = self._link = None
        for conversation, state in list(self.conversations.items()):
            if state.turn is not None:
                await self._fail_turn(conversation, state, "the bridge stopped before the turn ended")
        await self._set_link("disconnected", "the bridge stopped")
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.hooks.must("spacebot_shutdown")

    # -- HTTP ---------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, body: Payload | None = None, params: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        """One call to Spacebot's API: (status, JSON body or None). Raises aiohttp.ClientError
        or TimeoutError when Spacebot cannot be reached."""
        if self._session is None:
            raise RuntimeError("the Spacebot bridge is not running")
        url = f"{self.config.url}{path}"
        async with self._session.request(method, url, json=body, params=params, timeout=REQUEST_TIMEOUT) as response:
            text = await response.text()
        try:
            return response.status, json.loads(text) if text.strip() else None
        except ValueError:
            return response.status, None

    async def _send(self, conversation: Conversation, sent: Input) -> None:
        try:
            await self._baseline(conversation, self._state(conversation))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RuntimeError(f"Spacebot is unreachable ({reason(exc)})") from None
        body = {
            "agent_id": conversation.agent_id,
            "session_id": conversation.session_id,
            "sender_name": sent.sender_name,
            "message": sent.text,
            "attachment_ids": [],
        }
        try:
            status, _ = await self._request("POST", "/api/portal/send", body=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RuntimeError(f"Spacebot is unreachable ({reason(exc)})") from None
        if status == 404:
            raise RuntimeError(f"Spacebot has no agent {conversation.agent_id!r} (HTTP 404)")
        if status != 200:
            raise RuntimeError(f"Spacebot refused the message (HTTP {status})")

    # -- HostAPI ------------------------------------------------------------------------------

    def agents(self) -> list[dict[str, Any]]:
        return [
            {
                "id": agent.id,
                "name": agent.name,
                "model": MODEL,
                "provider": PROVIDER,
                "channels": list(agent.channels),
                "health": self.health,
            }
            for agent in self.settings.agents
        ]

    async def deliver_message(
        self,
        *,
        channel: Mapping[str, Any],
        thread_id: str,
        message: Mapping[str, Any],
        mentions: Sequence[str],
        skip: Sequence[str] = (),
    ) -> list[str]:
        author = message.get("author") or {}
        takers = [
            agent
            for agent in self.settings.agents
            if (channel.get("name") in agent.channels or agent.id in mentions)
            and not (author.get("kind") == "agent" and author.get("id") == agent.id)
            and agent.id not in skip
        ]
        sender_name = str(author.get("name") or author.get("id") or "someone")
        message_id = message.get("id")
        for agent in takers:
            conversation = Conversation(agent.id, str(channel["id"]), thread_id)
            # A voice memo reaches Spacebot as its transcript: the text /api/portal/send carries.
            text = await self.hooks.inbound_text(
                agent_id=agent.id, channel_id=str(channel["id"]), thread_id=thread_id, message=message
            )
            await self.hooks.call(
                "spacebot_inbound_message",
                **conversation.place,
                message_id=message_id,
                sender={"kind": author.get("kind", "user"), "id": author.get("id"), "name": sender_name},
                text=text,
            )
            await self._submit(conversation, Input(text, sender_name, [str(message_id)] if message_id else []))
        return [agent.id for agent in takers]

    async def retry_turn(
        self,
        *,
        channel_id: str,
        thread_id: str | None = None,
        agent_id: str | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        if agent_id is not None and thread_id is not None and messages:
            # After a restart the bridge has no record: send the stored input again.
            conversation = Conversation(agent_id, channel_id, thread_id)
            state = self._state(conversation)
            if state.last_input is None:
                last = messages[-1]
                state.last_input = Input(
                    str(last.get("text", "")), str(last.get("author") or "someone"), [str(m["id"]) for m in messages]
                )
        candidates = [
            (state.sent_at, conversation, state, state.last_input)
            for conversation, state in self.conversations.items()
            if conversation.channel_id == channel_id
            and (thread_id is None or conversation.thread_id == thread_id)
            and state.last_input is not None
        ]
        if not candidates:
            raise LookupError("no turn to retry in this channel")
        _, conversation, state, again = max(candidates, key=lambda candidate: candidate[0])
        turn_id, retried = new_id("turn"), state.last_turn_id
        state.next_turn_id = turn_id
        state.pending = [*again.message_ids, *(i for i in state.pending if i not in again.message_ids)]
        try:
            await self._send(conversation, again)
        except RuntimeError:
            state.next_turn_id = None
            raise
        state.sent_at = time.monotonic()
        return {
            "turn_id": turn_id,
            "agent_id": conversation.agent_id,
            "thread_id": conversation.thread_id,
            "retried_turn_id": retried,
            "message_ids": list(again.message_ids),
        }

    def status(self) -> dict[str, Any]:
        agents = []
        for agent in self.settings.agents:
            mine = [(c, s) for c, s in self.conversations.items() if c.agent_id == agent.id]
            agents.append(
                {
                    "id": agent.id,
                    "model": MODEL,
                    "provider": PROVIDER,
                    "health": self.health,
                    "queue": {},  # Spacebot does not expose its queues
                    "running": {c.channel_id: s.turn.turn_id for c, s in mine if s.turn is not None},
                    "workers": [
                        {
                            "worker_id": w,
                            "channel_id": c.channel_id,
                            "thread_id": c.thread_id,
                            "task": "",
                            "state": "running",
                        }
                        for c, s in mine
                        for w in sorted(s.workers)
                    ],
                }
            )
        return {"host": self.name, "link": self.link_status, "agents": agents}

    async def restart_agent(self, *, agent_id: str) -> dict[str, Any]:
        """As restart_worker, for every channel the agent is in."""
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        channels = sorted({c.channel_id for c in self.conversations if c.agent_id == agent_id})
        for channel_id in channels:
            await self.restart_worker(channel_id=channel_id, agent_id=agent_id)
        return {"agent_id": agent_id, "channels": channels}

    async def restart_worker(self, *, channel_id: str, agent_id: str | None = None) -> dict[str, Any]:
        """Spacebot cannot restart a channel process from outside: cancel its workers, and end
        the turn Spacechat shows as running (a later reply still lands, as a whole message)."""
        here = [
            (c, s)
            for c, s in self.conversations.items()
            if c.channel_id == channel_id and (agent_id is None or c.agent_id == agent_id)
        ]
        if not here:
            raise LookupError("no agent runs in this channel")
        cancelled: list[str] = []
        for conversation, state in here:
            for worker_id in sorted(state.workers):
                if await self._cancel_worker(conversation, state, worker_id):
                    cancelled.append(worker_id)
            if state.turn is not None:
                await self._fail_turn(conversation, state, "the turn was cancelled")
        agents = sorted({conversation.agent_id for conversation, _ in here})
        return {"channel_id": channel_id, "agents": agents, "workers_cancelled": cancelled}

    async def stop_turn(self, *, turn_id: str, agent_id: str, channel_id: str, thread_id: str) -> dict[str, Any]:
        """Spacebot's cancel route (`POST /api/channels/cancel-process`) stops workers and
        branches, not a channel's own reply: both are cancelled, the turn ends here with the text
        streamed so far, and what Spacebot still streams for that reply is dropped. Its tokens
        arrive with the next `/api/usage` poll, as all of the bridge's usage does."""
        conversation = Conversation(agent_id, channel_id, thread_id)
        state = self.conversations.get(conversation)
        if state is None or state.turn is None or state.turn.turn_id != turn_id:
            raise LookupError("this turn is not running")
        cancelled = []
        for worker_id in sorted(state.workers):
            if await self._cancel_worker(conversation, state, worker_id):
                cancelled.append(worker_id)
        for branch_id in sorted(state.branches):
            if await self._cancel_worker(conversation, state, branch_id, process_type="branch"):
                cancelled.append(branch_id)
            state.branches.discard(branch_id)
        state.discarding = True
        await self._complete_turn(conversation, state, state.turn, state.turn.text)
        return {"turn_id": turn_id, "stopped": True, "cancelled": cancelled}

    async def _cancel_worker(
        self, conversation: Conversation, state: ConversationState, worker_id: str, process_type: str = "worker"
    ) -> bool:
        body = {"channel_id": conversation.session_id, "process_type": process_type, "process_id": worker_id}
        try:
            status, answer = await self._request("POST", "/api/channels/cancel-process", body=body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RuntimeError(f"Spacebot is unreachable ({reason(exc)})") from None
        if status == 200 and not (isinstance(answer, dict) and answer.get("success") is False):
            return True  # Spacebot then reports worker_completed ("Worker cancelled: ...")
        state.workers.discard(worker_id)  # Spacebot no longer knows it: an end we missed
        self.worker_homes.pop(worker_id, None)
        return False

    async def reconnect_provider(self, *, name: str) -> dict[str, Any]:
        if name != CONNECTOR:
            raise LookupError(f"no provider named {name}")
        await _cancel(self._link)
        self._connected.clear()
        self._link = asyncio.create_task(self._run_link(), name="spacebot event stream")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), CONNECT_WAIT_SECONDS)
        return {"provider": CONNECTOR, "status": self.link_status or "disconnected"}

    async def recover_instance(self) -> dict[str, Any]:
        channel_ids = sorted({conversation.channel_id for conversation in self.conversations})
        cancelled = 0
        for channel_id in channel_ids:
            cancelled += len((await self.restart_worker(channel_id=channel_id))["workers_cancelled"])
        link = await self.reconnect_provider(name=CONNECTOR)
        return {
            "channels_restarted": len(channel_ids),
            "workers_cancelled": cancelled,
            "providers_reconnected": [CONNECTOR],
            "link": link["status"],
        }

    async def save_memory(self, *, agent_id: str, memory: Mapping[str, Any]) -> str:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        # Spacebot's HTTP API reads memories but has no route that writes one.
        raise RuntimeError("the Spacebot bridge cannot save memories yet")

    async def forget_memory(self, *, agent_id: str, key: str) -> bool:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        # Nor one that deletes one (its PR for memory edit and delete was closed unmerged).
        raise RuntimeError("the Spacebot bridge cannot forget memories yet")

    async def deliver_interaction(self, *, agent_id: str, interaction: Mapping[str, Any]) -> None:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        channel_id, thread_id = interaction.get("channel_id"), interaction.get("thread_id")
        if not channel_id or not thread_id:
            return
        user = interaction.get("user") or {}
        who = str(user.get("name") or user.get("id") or interaction.get("user_name") or "someone")
        text = self._ask_answer(interaction, who) or _interaction_text(interaction)
        message_id = interaction.get("message_id")
        sent = Input(text, who, [str(message_id)] if message_id else [])
        await self._submit(Conversation(agent_id, str(channel_id), str(thread_id)), sent)

    # -- the link -----------------------------------------------------------------------------

    async def _set_link(self, status: str, detail: str | None) -> None:
        if status == "connected":
            self._connected.set()
        else:
            self._connected.clear()
        if status == self.link_status:
            return
        self.link_status = status
        log.info("Spacebot link %s%s", status, f": {detail}" if detail else "")
        await self.hooks.call("spacebot_connector_status", connector=CONNECTOR, status=status, detail=detail)

    async def _run_link(self) -> None:
        """Read the event stream for as long as the bridge runs, reconnecting with exponential
        backoff (reset by every successful connection) up to `bridge.reconnect_max_seconds`."""
        delay = FIRST_RETRY_SECONDS
        while True:
            if await self._listen():
                delay = FIRST_RETRY_SECONDS
            await asyncio.sleep(min(delay, self.config.reconnect_max_seconds))
            delay = min(delay * 2, self.config.reconnect_max_seconds)

    async def _listen(self) -> bool:
        """One connection to `/api/events`; True when it connected."""
        if self._session is None:
            return False
        connected = False
        try:
            async with self._session.get(
                f"{self.config.url}/api/events", headers={"Accept": "text/event-stream"}, timeout=STREAM_TIMEOUT
            ) as response:
                if response.status != 200:
                    refused = response.status in (401, 403)
                    await self._set_link(
                        "error",
                        f"Spacebot refused the bridge's token (HTTP {response.status})"
                        if refused
                        else f"/api/events answered HTTP {response.status}",
                    )
                    return False
                connected = True
                await self._set_link("connected", None)
                if self.ever_connected:
                    async with self._events_lock:
                        await self._backfill_all("a reconnection")
                self.ever_connected = True
                parser = SSEParser()
                async for chunk in response.content.iter_any():
                    for name, data in parser.feed(chunk):
                        async with self._events_lock:
                            await self._dispatch(name, data)
            detail = "Spacebot ended the event stream"
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = f"Spacebot is unreachable ({reason(exc)})"
        await self._link_lost(detail)
        return connected

    async def _link_lost(self, detail: str) -> None:
        """Events sent while the link is down are lost (Spacebot does not replay them). Turns in
        flight stay open: the reconnection's backfill delivers a reply that came meanwhile, the
        live stream one that comes later, and the watchdog fails a turn that never ends."""
        await self._set_link("disconnected", detail)
        self.tool_calls.clear()  # their ends, if any, were lost with the link

    async def _on_lagged(self, payload: Payload) -> None:
        log.warning("Spacebot's event stream skipped %s events: backfilling from its history", payload.get("skipped"))
        await self._backfill_all("a lagged stream")

    async def _watch_turns(self) -> None:
        """A turn with no event for `bridge.turn_timeout_seconds` is looked for in the history
        once more, then failed (retryable): Spacebot restarted or lost it, and it must not stay
        open forever."""
        limit = self.config.turn_timeout_seconds
        now = time.monotonic()
        async with self._events_lock:
            for conversation, state in list(self.conversations.items()):
                if state.turn is None or now - state.last_event < limit:
                    continue
                await self._backfill(conversation, state)
                if state.turn is not None:
                    await self._fail_turn(
                        conversation, state, f"Spacebot did not finish the turn (no event for {limit:g} s)"
                    )

    # -- polls --------------------------------------------------------------------------------

    async def _run_polls(self) -> None:
        while True:
            await self._check_health()
            if self.usage_enabled:
                await self._check_usage()
            await self._watch_turns()
            await asyncio.sleep(self.config.poll_seconds)

    async def _check_health(self) -> None:
        try:
            status, body = await self._request("GET", "/api/health")
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self._set_health("down", f"Spacebot is unreachable ({reason(exc)})")
            return
        if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
            await self._set_health("ok", None)
        else:
            await self._set_health("down", f"/api/health answered HTTP {status}")

    async def _set_health(self, status: str, detail: str | None) -> None:
        if status != self.health:
            self.health = status
            await self.hooks.call("spacebot_health_changed", component=COMPONENT, status=status, detail=detail)


def _interaction_text(interaction: Mapping[str, Any]) -> str:
    """Any other interaction as the text Spacebot shows an interaction it cannot match
    (`MessageContent::Interaction`'s Display, src/lib.rs): `[interaction: id → values]`."""
    action_id = str(interaction.get("action_id") or "")
    values = interaction.get("values")
    if isinstance(values, dict):
        shown = json.dumps(values, ensure_ascii=False)
    elif isinstance(values, list):
        shown = ", ".join(str(v) for v in values)
    else:
        shown = "" if values is None else str(values)
    return f"[interaction: {action_id} → {shown}]" if shown else f"[interaction: {action_id}]"


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
