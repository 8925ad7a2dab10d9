"""`spacechat_interaction_submitted` reaches a hook plugin once a card's interaction is recorded,
and a plugin that handles it keeps it from the waiters and the card's agent. In-process, on a
real SQLite file, with a real pluggy plugin manager carrying the hook specs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pluggy
import pytest

from spacechat_plugin import hookspecs
from spacechat_plugin.app import Spacechat
from spacechat_plugin.config import settings_from_mapping
from spacechat_plugin.events import Actor
from spacechat_plugin.hookspecs import hookimpl
from spacechat_plugin.identity.permissions import SCOPES, Principal

pytestmark = pytest.mark.asyncio


class Handler:
    def __init__(self, handles: bool) -> None:
        self.handles = handles
        self.seen: list[tuple[str, str, bool]] = []

    @hookimpl
    def spacechat_interaction_submitted(
        self, spacechat: Any, interaction: Mapping[str, Any], message: Mapping[str, Any]
    ) -> bool | None:
        self.seen.append((interaction["action_id"], message["id"], spacechat is not None))
        return True if self.handles else None


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Spacechat]:
    settings = settings_from_mapping({"enabled": True, "data_dir": str(tmp_path / "d"), "runtime": {"mode": "none"}})
    running = Spacechat(settings, None)
    await running.start()
    yield running
    await running.stop()


@pytest.mark.parametrize("handles", [True, False])
async def test_the_hook_sees_the_interaction_and_may_take_it(app: Spacechat, handles: bool) -> None:
    pm = pluggy.PluginManager("spacebot")
    pm.add_hookspecs(hookspecs)
    handler = Handler(handles)
    pm.register(handler)
    app.hooks.pm = pm
    channel = app.access.channel_named("general", app.instance.org_id)
    assert channel is not None
    blocks = [{"type": "actions", "block_id": "b", "elements": [{"type": "button", "action_id": "go", "label": "Go"}]}]
    card = await app.cards.post(channel, "a card", blocks=blocks, author=Actor("agent", "spacebot"))
    waiter = app.cards.wait_for(card["id"])
    who = Principal(Actor("user", "u_1"), app.instance.org_id, frozenset(SCOPES), role="owner")
    status, body = await app.cards.submit(who, card, action_id="go", block_id=None, values=None, key=None)
    assert status == 201 and body["interaction"]["action_id"] == "go"
    assert handler.seen == [("go", card["id"], True)]
    assert pm.hook.spacechat_interaction_submitted.get_hookimpls()[0].function.__name__ == (
        "spacechat_interaction_submitted"
    )
    assert waiter.done(), "waiters hear of it either way"
