"""The API hook plugins use (`spacechat_ready(spacechat)` hands it over): post messages and
cards, wait for people to act on them, mark them decided, act on tasks, and keep small state
that survives restarts. Everything goes through the same store and events as the HTTP API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .cards.service import check_card, initial_state
from .events import SYSTEM, Actor, now_rfc3339
from .store import messages as message_store
from .store import tasks as task_store
from .store.db import dumps, loads

if TYPE_CHECKING:
    from .app import Spacechat


class SpacechatAPI:
    def __init__(self, app: Spacechat) -> None:
        self._app = app

    @property
    def org_id(self) -> str:
        return self._app.org_id

    @property
    def base_url(self) -> str:
        return self._app.base_url

    def plugin_config(self, name: str) -> dict[str, Any]:
        """The `[config.hooks.<name>]` table of the Spacechat config (empty when absent)."""
        return dict(self._app.settings.hooks.get(name, {}))

    # -- where ---------------------------------------------------------------------------------

    def channel(self, channel_id: str) -> dict[str, Any] | None:
        return self._app.channels.get(channel_id)

    def channel_named(self, name: str, org_id: str | None = None) -> dict[str, Any] | None:
        org = org_id or self.org_id
        return next((c for c in self._app.channels.values() if c["name"] == name and c["org_id"] == org), None)

    def agent_home(self, agent_id: str) -> dict[str, Any] | None:
        """An agent's home channel: the first channel it is bound to."""
        host = self._app.host
        for agent in host.agents() if host is not None else []:
            if agent["id"] == agent_id:
                for name in agent.get("channels", []):
                    found = self.channel_named(name)
                    if found is not None:
                        return found
        return None

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
        channel = self._app.channels[channel_id]
        checked = check_card(list(blocks)) if blocks else None

        result = await self._app.db.write(
            lambda tx: message_store.post_message(
                tx,
                actor=author,
                channel=channel,
                thread_id=thread_id,
                text=text,
                blocks=checked,
                metadata=dict(metadata or {}),
                card_state=initial_state(checked),
            )
        )
        return result.message

    def wait_for_interaction(self, message_id: str) -> asyncio.Future[dict[str, Any]]:
        """Resolved by the next interaction on the card (it is then not also sent to an agent)."""
        return self._app.cards.wait_for(message_id)

    async def decide(self, message_id: str, block_id: str, label: str, by: Actor = SYSTEM) -> dict[str, Any]:
        """Show a block as decided ("Approved by ..."); further clicks on it answer 409."""
        return await self._app.cards.decide(message_id, block_id, label, by)

    # -- tasks and agents ---------------------------------------------------------------------

    async def task(self, task_id: str) -> dict[str, Any] | None:
        return await task_store.get(self._app.db, task_id)

    async def retry_turn(self, channel_id: str, thread_id: str | None) -> dict[str, Any]:
        if self._app.host is None:
            raise RuntimeError("no agent host is running")
        return await self._app.host.retry_turn(channel_id=channel_id, thread_id=thread_id)

    # -- state that survives restarts ---------------------------------------------------------

    async def get_state(self, plugin: str, key: str) -> Any:
        row = await self._app.db.fetchone("SELECT value FROM plugin_state WHERE plugin = ? AND key = ?", (plugin, key))
        return None if row is None else loads(row["value"])

    async def set_state(self, plugin: str, key: str, value: Any) -> None:
        await self._app.db.write(
            lambda tx: tx.execute(
                "INSERT INTO plugin_state (plugin, key, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (plugin, key, dumps(value), now_rfc3339()),
            )
        )

    async def delete_state(self, plugin: str, key: str) -> None:
        await self._app.db.write(
            lambda tx: tx.execute("DELETE FROM plugin_state WHERE plugin = ? AND key = ?", (plugin, key))
        )

    async def all_state(self, plugin: str) -> dict[str, Any]:
        rows = await self._app.db.fetchall("SELECT key, value FROM plugin_state WHERE plugin = ?", (plugin,))
        return {row["key"]: loads(row["value"]) for row in rows}

    def worker_place(self, worker_id: str) -> dict[str, str | None] | None:
        """Where a running or recently finished worker ran: `{agent_id, channel_id, thread_id}`."""
        activity = self._app.activity
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
        channel = self._app.channels[channel_id]
        return await self._app.db.write(
            lambda tx: self._app.cards.post_task_card(tx, dict(task), channel, author, thread_id=thread_id, text=text)
        )

    async def task_card_channels(self, task_id: str) -> set[str]:
        rows = await self._app.db.fetchall(
            "SELECT m.channel_id FROM task_cards c JOIN messages m ON m.id = c.message_id WHERE c.task_id = ?",
            (task_id,),
        )
        return {row[0] for row in rows}

    async def run_tool_call(self, agent_id: str, call: Mapping[str, Any]) -> None:
        """Ask the agent's host to run an already approved tool call (after its turn was lost)."""
        if self._app.host is None:
            raise RuntimeError("no agent host is running")
        await self._app.host.deliver_interaction(agent_id=agent_id, interaction=call)

    async def open_incident(
        self,
        *,
        kind: str,
        title: str,
        severity: str = "major",
        details: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Open an incident (or return the open one with the same `source`), with its live card in
        the incidents channel. `details` may hold `error`, `hint`, and `retry: {channel_id,
        thread_id}` to offer a Retry button."""
        return await self._app.incidents.open(
            org_id=self.org_id, kind=kind, title=title, severity=severity, details=details, source=source
        )
