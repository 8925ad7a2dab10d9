"""The API hook plugins use (`spacechat_ready(spacechat)` hands it over): post messages and
cards, wait for people to act on them, mark them decided, act on tasks, open incidents, and
keep small state that survives restarts. Everything goes through the same store and events as
the HTTP API. This is the whole surface a hook plugin may use (docs/hooks.md): the plugins in
hooks/ import nothing else of the package.

Built by the composition root last, from the services it fronts; no service depends on it.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from .agents.activity import Activity
from .agents.approvals import Approvals
from .agents.home import home_channel
from .cards.service import CardService
from .config import ConfigError, Settings
from .events import SYSTEM, Actor
from .hookspecs import HostAPI
from .identity.permissions import Access
from .instance import Instance
from .operations.incidents import Incidents
from .resources import resource
from .store import cards as card_store
from .store import plugin_state
from .store import tasks as task_store
from .store import usage as usage_store
from .store.db import Database


class SpacechatAPI:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        instance: Instance,
        access: Access,
        host: HostAPI | None,
        cards: CardService,
        activity: Activity,
        incidents: Incidents,
        approvals: Approvals,
    ) -> None:
        self._db, self._settings, self._instance, self._access, self._host = db, settings, instance, access, host
        self._cards, self._activity, self._incidents, self._approvals = cards, activity, incidents, approvals

    @property
    def org_id(self) -> str:
        return self._instance.org_id

    @property
    def base_url(self) -> str:
        return self._instance.base_url

    def plugin_config(self, name: str) -> dict[str, Any]:
        """The `[config.hooks.<name>]` table of the Spacechat config (empty when absent)."""
        return dict(self._settings.hooks.get(name, {}))

    # -- where ---------------------------------------------------------------------------------

    def channel(self, channel_id: str) -> dict[str, Any] | None:
        return self._access.channels.get(channel_id)

    def channel_named(self, name: str, org_id: str | None = None) -> dict[str, Any] | None:
        return self._access.channel_named(name, org_id or self.org_id)

    def agent_home(self, agent_id: str) -> dict[str, Any] | None:
        """An agent's home channel: the first channel it is bound to."""
        return home_channel(self._host, self._access, self._instance, agent_id)

    # -- messages and cards -------------------------------------------------------------------

    async def post(
        self,
        channel_id: str,
        text: str,
        *,
        thread_id: str | None = None,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        author: Actor = SYSTEM,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Post a message (a card when `blocks` are given; they are validated like any card)."""
        return await self._cards.post(
            self._access.channels[channel_id],
            text,
            thread_id=thread_id,
            blocks=[dict(block) for block in blocks] if blocks else None,
            author=author,
            metadata=metadata,
        )

    def wait_for_interaction(self, message_id: str) -> asyncio.Future[dict[str, Any]]:
        """Resolved by the next interaction on the card (it is then not also sent to an agent)."""
        return self._cards.wait_for(message_id)

    async def decide(self, message_id: str, block_id: str, label: str, by: Actor = SYSTEM) -> dict[str, Any]:
        """Show a block as decided ("Approved by ..."); further clicks on it answer 409."""
        return await self._cards.decide(message_id, block_id, label, by)

    # -- tasks and agents ---------------------------------------------------------------------

    async def task(self, task_id: str) -> dict[str, Any] | None:
        return await task_store.get(self._db, task_id)

    async def retry_turn(self, channel_id: str, thread_id: str | None) -> dict[str, Any]:
        if self._host is None:
            raise RuntimeError("no agent host is running")
        return await self._host.retry_turn(channel_id=channel_id, thread_id=thread_id)

    # -- state that survives restarts ---------------------------------------------------------

    async def get_state(self, plugin: str, key: str) -> Any:
        return await plugin_state.get(self._db, plugin, key)

    async def set_state(self, plugin: str, key: str, value: Any) -> None:
        await self._db.write(lambda tx: plugin_state.put(tx, plugin, key, value))

    async def delete_state(self, plugin: str, key: str) -> None:
        await self._db.write(lambda tx: plugin_state.delete(tx, plugin, key))

    async def all_state(self, plugin: str) -> dict[str, Any]:
        return await plugin_state.every(self._db, plugin)

    def worker_place(self, worker_id: str) -> dict[str, str | None] | None:
        """Where a running or recently finished worker ran: `{agent_id, channel_id, thread_id}`."""
        activity = self._activity
        place = activity.workers.get(worker_id) or activity.finished.get(worker_id)
        if place is None:
            return None
        return {"agent_id": place.agent_id, "channel_id": place.channel_id, "thread_id": place.thread_id}

    async def post_task_card(
        self,
        task: Mapping[str, Any],
        channel_id: str,
        *,
        thread_id: str | None = None,
        text: str | None = None,
        author: Actor = SYSTEM,
    ) -> dict[str, Any]:
        """Post a card bound live to a task (with Approve/Reject while it waits for approval)."""
        channel = self._access.channels[channel_id]
        return await self._db.write(
            lambda tx: self._cards.post_task_card(tx, dict(task), channel, author, thread_id=thread_id, text=text)
        )

    async def task_card_channels(self, task_id: str) -> set[str]:
        return await card_store.task_card_channels(self._db, task_id)

    async def run_tool_call(self, agent_id: str, call: Mapping[str, Any]) -> None:
        """Ask the agent's host to run an already approved tool call (after its turn was lost)."""
        if self._host is None:
            raise RuntimeError("no agent host is running")
        await self._host.deliver_interaction(agent_id=agent_id, interaction=call)

    async def approve_tool_call(
        self,
        *,
        agent_id: str,
        channel_id: str,
        thread_id: str,
        turn_id: str | None,
        call_id: str,
        tool: str,
        arguments: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        """Apply the approval policies to a tool call (docs/observability.md, "Approvals"): None
        lets it run unasked; else `{"decision": "allow" | "deny", "reason"}`, once a rule or a
        person decided (the card waits as long as that takes)."""
        return await self._approvals.before_tool_call(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            turn_id=turn_id,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
        )

    # -- incidents ----------------------------------------------------------------------------

    def remediation_hint(self, error: str) -> str | None:
        """A remediation hint for an error text (what an operator can try), as incidents show."""
        return usage_store.hint_for(error)

    async def open_incident(
        self,
        *,
        kind: str,
        title: str,
        severity: str | None = None,
        details: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Open an incident (or return the open one with the same `source`), with its live card in
        the incidents channel. `details` may hold `error`, `hint`, and `retry: {channel_id,
        thread_id}` to offer a Retry button."""
        return await self._incidents.open(
            org_id=self.org_id, kind=kind, title=title, severity=severity, details=details, source=source
        )


def load_hook_plugins(pm: pluggy.PluginManager | None, names: Sequence[str]) -> None:
    """Register the ready-made hook plugins named in `hook_plugins` (files in hooks/)."""
    if not names:
        return
    if pm is None:
        raise ConfigError("hook_plugins need a host to register with")
    folder = resource("hooks")
    for name in names:
        path = folder / f"{name}.py"
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
            raise ConfigError(f"hook_plugins: no hook plugin named {name!r} (there are: {', '.join(known)})")
        spec = importlib.util.spec_from_file_location(f"spacechat_hooks.{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if pm.get_plugin(f"spacechat-hooks.{name}") is None:
            pm.register(module, name=f"spacechat-hooks.{name}")
