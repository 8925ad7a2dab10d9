"""The embedded host: Spacebot's runtime shape in Python, for `spacechat serve`.

Agents come from config, each bound to channels by name; each (agent, channel) pair has its own
process (turns.AgentChannel). The host implements the HostAPI and calls every hook at the point
Spacebot would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy

from ...config import ProviderConfig, Settings
from ...events import new_id, now_rfc3339
from ...hookspecs import hookimpl
from ..agui.client import AguiAgent
from ..hooks import HookRunner
from .providers import Provider, ToolCall
from .providers.openai import OpenAIProvider
from .providers.scripted import ScriptedProvider
from .runtime import WorkerInfo
from .tools import BUILTIN_TOOLS, Tool
from .turns import AgentChannel, Inbound, TurnRecord, Work

log = logging.getLogger("spacechat.host")


def make_provider(name: str, config: ProviderConfig) -> Provider:
    if config.kind == "agui":
        return AguiAgent(name, url=config.base_url, headers=config.headers, timeout_seconds=config.timeout_seconds)
    if config.kind == "openai":
        return OpenAIProvider(
            name, base_url=config.base_url, api_key=config.api_key, timeout_seconds=config.timeout_seconds
        )
    return ScriptedProvider(name, chars_per_second=config.chars_per_second)


class EmbeddedHost:
    name = "embedded"

    def __init__(self, settings: Settings, pm: pluggy.PluginManager, raw_config: Mapping[str, Any]) -> None:
        self.settings = settings
        self.pm = pm
        self.raw_config = raw_config
        self.hooks = HookRunner(pm)
        self.providers: dict[str, Provider] = {
            name: make_provider(name, config) for name, config in settings.providers.items()
        }
        self.provider_health: dict[str, str] = {name: "ok" for name in self.providers}
        self.agents_by_id = {agent.id: agent for agent in settings.agents}
        self.tools: dict[str, Tool] = dict(BUILTIN_TOOLS)
        self.channels: dict[tuple[str, str], AgentChannel] = {}
        self.workers: dict[str, WorkerInfo] = {}
        self.running = settings.runtime.mode == "embedded"
        self.memories: list[dict[str, Any]] = []
        # Questions and permission requests waiting for people, by question/permission id.
        self.answers: dict[str, asyncio.Future[Mapping[str, Any]]] = {}
        if pm.get_plugin(Feedback.NAME) is None:
            pm.register(Feedback(self), name=Feedback.NAME)

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def memory_path(self) -> Path:
        return Path(self.settings.data_path) / "host-memories.jsonl"

    async def start(self) -> None:
        if self.memory_path.exists():
            lines = (await asyncio.to_thread(self.memory_path.read_text, encoding="utf-8")).splitlines()
            self.memories = _fold([json.loads(line) for line in lines if line.strip()])
        await self.hooks.must("spacebot_startup", host=self, config=self.raw_config)

    def routes(self) -> list[Any]:
        found: list[Any] = []
        for result in self.pm.hook.spacebot_register_routes():
            found.extend(result or [])
        return found

    async def stop(self) -> None:
        for channel in list(self.channels.values()):
            await channel.stop()
        self.channels.clear()
        for provider in self.providers.values():
            await provider.close()
        await self.hooks.must("spacebot_shutdown")

    # -- provider health ----------------------------------------------------------------------

    async def provider_ok(self, name: str) -> None:
        if self.provider_health.get(name) != "ok":
            self.provider_health[name] = "ok"
            await self.hooks.call("spacebot_health_changed", component=f"provider:{name}", status="ok", detail=None)

    async def provider_failed(self, name: str, detail: str) -> None:
        if self.provider_health.get(name) != "down":
            self.provider_health[name] = "down"
            await self.hooks.call(
                "spacebot_health_changed", component=f"provider:{name}", status="down", detail=detail[:300]
            )

    # -- HostAPI ------------------------------------------------------------------------------

    def agents(self) -> list[dict[str, Any]]:
        return [
            {
                "id": agent.id,
                "name": agent.name,
                "model": agent.model,
                "provider": agent.provider,
                "channels": list(agent.channels),
                "health": self.provider_health.get(agent.provider, "ok"),
            }
            for agent in self.settings.agents
        ]

    def status(self) -> dict[str, Any]:
        agents = []
        for agent in self.settings.agents:
            processes = {cid: p for (aid, cid), p in self.channels.items() if aid == agent.id}
            agents.append(
                {
                    "id": agent.id,
                    "model": agent.model,
                    "provider": agent.provider,
                    "health": self.provider_health.get(agent.provider, "ok"),
                    "state": self._shared_state(agent.id, agent.provider),
                    "queue": {cid: p.queue_depth for cid, p in processes.items()},
                    "running": {cid: p.current_turn for cid, p in processes.items() if p.current_turn},
                    "workers": [
                        {
                            "worker_id": w.worker_id,
                            "channel_id": w.channel_id,
                            "thread_id": w.thread_id,
                            "task": w.task,
                            "state": w.state,
                        }
                        for w in self.workers.values()
                        if w.agent_id == agent.id
                    ],
                }
            )
        return {"host": self.name, "agents": agents}

    def _shared_state(self, agent_id: str, provider_name: str) -> dict[str, Any]:
        """An AG-UI agent's shared state per thread (STATE_SNAPSHOT / STATE_DELTA), for its status page."""
        provider = self.providers.get(provider_name)
        return provider.states(agent_id) if isinstance(provider, AguiAgent) else {}

    def _channel(self, agent_id: str, channel_id: str) -> AgentChannel:
        key = (agent_id, channel_id)
        channel = self.channels.get(key)
        if channel is None:
            channel = AgentChannel(self, self.agents_by_id[agent_id], channel_id)
            channel.start()
            self.channels[key] = channel
        return channel

    async def deliver_message(
        self,
        *,
        channel: Mapping[str, Any],
        thread_id: str,
        message: Mapping[str, Any],
        mentions: Sequence[str],
        skip: Sequence[str] = (),
    ) -> list[str]:
        if not self.running:
            return []
        author = message.get("author") or {}
        takers = [
            agent
            for agent in self.settings.agents
            if (channel.get("name") in agent.channels or agent.id in mentions)
            and not (author.get("kind") == "agent" and author.get("id") == agent.id)
            and agent.id not in skip
        ]
        for agent in takers:
            text = await self.hooks.inbound_text(
                agent_id=agent.id, channel_id=channel["id"], thread_id=thread_id, message=message
            )
            await self.hooks.call(
                "spacebot_inbound_message",
                agent_id=agent.id,
                channel_id=channel["id"],
                thread_id=thread_id,
                message_id=message.get("id"),
                sender={
                    "kind": author.get("kind", "user"),
                    "id": author.get("id"),
                    "name": author.get("name") or author.get("id"),
                },
                text=text,
            )
            self._channel(agent.id, channel["id"]).enqueue(
                Inbound(
                    thread_id,
                    str(message.get("id")),
                    str(author.get("name") or author.get("id") or "someone"),
                    text,
                )
            )
        return [agent.id for agent in takers]

    async def retry_turn(
        self,
        *,
        channel_id: str,
        thread_id: str | None = None,
        agent_id: str | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        candidates = [
            (process, process.last_turns.get(thread_id or "*"))
            for (aid, cid), process in self.channels.items()
            if cid == channel_id and agent_id in (None, aid)
        ]
        found = [(process, record) for process, record in candidates if record is not None]
        if found:
            process, record = found[-1]
        elif messages and thread_id and agent_id in self.agents_by_id:
            # The turn was lost with a restart: its input, as the plugin stored it, runs again.
            assert agent_id is not None
            process = self._channel(agent_id, channel_id)
            inbound = [
                Inbound(thread_id, str(m["id"]), str(m.get("author") or "someone"), str(m.get("text", "")))
                for m in messages
            ]
            record = TurnRecord(thread_id, inbound, "")
        else:
            raise LookupError("no turn to retry in this channel")
        turn_id = new_id("turn")
        process.enqueue_retry(Work(record.inbound, turn_id=turn_id))
        return {
            "turn_id": turn_id,
            "agent_id": process.agent.id,
            "thread_id": record.thread_id,
            "retried_turn_id": record.turn_id,
            "message_ids": [m.message_id for m in record.inbound],
        }

    async def stop_turn(self, *, turn_id: str, agent_id: str, channel_id: str, thread_id: str) -> dict[str, Any]:
        process = self.channels.get((agent_id, channel_id))
        if process is None or not await process.stop_turn(turn_id):
            raise LookupError("this turn is not running")
        return {"turn_id": turn_id, "stopped": True, "agent_id": agent_id}

    async def restart_agent(self, *, agent_id: str) -> dict[str, Any]:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        restarted = []
        for key, process in list(self.channels.items()):
            if key[0] == agent_id:
                self.channels[key] = await self._restarted(process)
                restarted.append(key[1])
        return {"agent_id": agent_id, "channels": restarted}

    async def _restarted(self, process: AgentChannel) -> AgentChannel:
        """Stop a channel process (its running turn fails as cancelled) and start a fresh one that
        keeps its queue, transcripts and last turns."""
        pending, retries = process.pending, process.retries
        await process.stop()
        fresh = AgentChannel(
            self,
            process.agent,
            process.channel_id,
            pending=pending,
            retries=retries,
            transcripts=process.transcripts,
            last_turns=process.last_turns,
        )
        fresh.start()
        if pending or retries:
            fresh._wake.set()
        return fresh

    async def restart_worker(self, *, channel_id: str) -> dict[str, Any]:
        restarted = []
        for key, process in list(self.channels.items()):
            if key[1] != channel_id:
                continue
            self.channels[key] = await self._restarted(process)
            restarted.append(process.agent.id)
        if not restarted:
            raise LookupError("no agent runs in this channel")
        return {"channel_id": channel_id, "agents": restarted}

    async def reconnect_provider(self, *, name: str) -> dict[str, Any]:
        provider = self.providers.get(name)
        if provider is None:
            raise LookupError(f"no provider named {name}")
        await provider.reconnect()
        await self.provider_ok(name)
        return {"provider": name, "status": "reconnected"}

    async def recover_instance(self) -> dict[str, Any]:
        channel_ids = sorted({cid for _, cid in self.channels})
        for channel_id in channel_ids:
            await self.restart_worker(channel_id=channel_id)
        for name in self.providers:
            await self.reconnect_provider(name=name)
        return {"channels_restarted": len(channel_ids), "providers_reconnected": sorted(self.providers)}

    async def save_memory(self, *, agent_id: str, memory: Mapping[str, Any]) -> str:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        key = memory.get("key")
        held = next((m for m in self.memories if key and m.get("key") == key and m["agent_id"] == agent_id), None)
        if held is not None and int(held.get("revision") or 0) >= int(memory.get("revision") or 0):
            return str(held["id"])  # already held at this revision: a retried delivery saves nothing
        memory_id = str(held["id"]) if held is not None else new_id("mem")
        record = {**dict(memory), "id": memory_id, "agent_id": agent_id, "saved_at": now_rfc3339()}
        await asyncio.to_thread(_append_line, self.memory_path, json.dumps(record, ensure_ascii=False))
        self.memories = [m for m in self.memories if m["id"] != memory_id] + [record]
        await self.hooks.call(
            "spacebot_memory_saved",
            agent_id=agent_id,
            channel_id=memory.get("channel_id"),
            memory_id=memory_id,
            memory_type=str(memory.get("memory_type", "fact")),
            importance=float(memory.get("importance", 0.6)),
            content_summary=str(memory.get("content", ""))[:200],
        )
        return memory_id

    async def forget_memory(self, *, agent_id: str, key: str) -> bool:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        held = [m for m in self.memories if m.get("key") == key and m["agent_id"] == agent_id]
        if not held:
            return False
        line = json.dumps({"id": held[0]["id"], "agent_id": agent_id, "key": key, "forgotten": True})
        await asyncio.to_thread(_append_line, self.memory_path, line)
        self.memories = [m for m in self.memories if m.get("key") != key or m["agent_id"] != agent_id]
        return True

    def recall(self, agent_id: str, text: str, limit: int = 5) -> list[dict[str, Any]]:
        """Memories sharing at least two words (of four letters or more) with `text`."""
        words = {w for w in re.findall(r"[a-z0-9]{4,}", text.lower())}
        scored = []
        for memory in self.memories:
            if memory.get("agent_id") != agent_id:
                continue
            shared = words & set(re.findall(r"[a-z0-9]{4,}", str(memory.get("content", "")).lower()))
            if len(shared) >= 2:
                scored.append((len(shared), memory))
        scored.sort(key=lambda pair: pair[0], reverse=True)
        return [memory for _, memory in scored[:limit]]

    def expect_answer(self, key: str) -> asyncio.Future[Mapping[str, Any]]:
        """A future resolved when deliver_interaction brings the answer for `key`."""
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self.answers[key] = future
        future.add_done_callback(lambda _: self.answers.pop(key, None))
        return future

    async def deliver_interaction(self, *, agent_id: str, interaction: Mapping[str, Any]) -> None:
        if agent_id not in self.agents_by_id:
            raise LookupError(f"no agent {agent_id}")
        # An answer to a worker's question or permission request resumes that worker.
        waiting = self.answers.get(str(interaction.get("question_id") or interaction.get("permission_id") or ""))
        if waiting is not None and not waiting.done():
            waiting.set_result(interaction)
            return
        channel_id, thread_id = interaction.get("channel_id"), interaction.get("thread_id")
        if not channel_id or not thread_id:
            return
        process = self._channel(agent_id, str(channel_id))
        if interaction.get("kind") == "approved_tool_call":
            # People approved a call whose turn was lost (a restart): run it, then let the model go on.
            call = ToolCall(str(interaction["call_id"]), str(interaction["tool"]), dict(interaction["arguments"]))
            note = Inbound(str(thread_id), str(interaction.get("message_id")), "approval", f"[approved] {call.name}")
            process.enqueue_retry(Work([note], approved_call=call))
            return
        user = interaction.get("user") or {}
        who = user.get("name") or user.get("id") or "someone"
        process.enqueue(
            Inbound(str(thread_id), str(interaction.get("message_id")), str(who), interaction_note(who, interaction))
        )

    async def task_action(
        self,
        *,
        source: str,
        number: int,
        action: str,
        actor: Mapping[str, Any],
        changes: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The embedded host owns no tasks of another system: Spacechat's own tasks are its own."""
        raise LookupError(f"the embedded host has no {source!r} tasks (only the bridge to a Spacebot has)")


class Feedback:
    """Reactions on an agent's reply reach that agent (issue 13): as a note in the thread's
    context, which the agent's next turn there reads, like a person's feedback on an answer. It
    starts no turn of its own."""

    NAME = "spacebot.embedded.feedback"

    def __init__(self, host: EmbeddedHost) -> None:
        self.host = host

    @hookimpl
    def spacechat_reaction_changed(self, reaction: Mapping[str, Any]) -> None:
        agent_id = reaction.get("agent_id")
        if agent_id not in self.host.agents_by_id or not reaction.get("thread_id"):
            return
        who = (reaction.get("user") or {}).get("name") or "someone"
        done = "reacted" if reaction.get("action") == "added" else "took back their reaction"
        note = f"[feedback] {who} {done} {reaction.get('emoji')} on your reply {reaction.get('message_id')}"
        process = self.host._channel(str(agent_id), str(reaction["channel_id"]))
        process.transcripts.setdefault(str(reaction["thread_id"]), []).append({"role": "user", "content": note})


def _fold(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The memories a journal holds: the last line per id wins; a `forgotten` line removes it."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        latest.pop(str(record["id"]), None)
        if not record.get("forgotten"):
            latest[str(record["id"])] = record
    return list(latest.values())


def interaction_note(who: str, interaction: Mapping[str, Any]) -> str:
    """What the model reads about an act on its card, as a person would say it, with the details
    a program needs after it: `[interaction] Olivia chose “Approve” (action approve, value "yes")`."""
    kind = interaction.get("kind")
    label = str(interaction.get("label") or interaction.get("action_id") or "")
    values = interaction.get("values")
    if kind == "form" and isinstance(values, Mapping):
        answers = "; ".join(f"{name}: {value}" for name, value in values.items())
        said = f"{who} submitted the form: {answers}" if answers else f"{who} submitted the form"
    elif kind == "poll":
        said = f"{who} voted {json.dumps(values, ensure_ascii=False)}"
    else:
        said = f"{who} chose “{label}”"
    details = f"action {interaction.get('action_id')}"
    if values is not None and kind != "form":
        details += f", value {json.dumps(values, ensure_ascii=False)}"
    return f"[interaction] {said} ({details})"


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
