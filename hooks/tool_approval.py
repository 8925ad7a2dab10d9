"""Ready-made hook plugin: tools listed in `[hooks.tool_approval] tools` need a person's
approval before each run.

`spacebot_before_tool_call` posts an Approve / Deny card in the conversation and holds the call
(the agent's turn stays alive; the worker shows waiting_for_input) until someone with
`tasks:approve` decides. The pending approval is kept in Spacechat's store: after a restart the
card still works, and approving it then runs the tool in a new turn (through HostAPI
`deliver_interaction`), since the turn that asked did not survive the restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from spacechat_plugin.events import Actor
from spacechat_plugin.hookspecs import hookimpl

PLUGIN = "tool_approval"
_spacechat: Any = None
_waiting: set[str] = set()  # cards whose asking turn is alive in this process


@hookimpl
def spacechat_ready(spacechat: Any) -> None:
    global _spacechat
    _spacechat = spacechat


def _card(agent_id: str, tool: str, arguments: Mapping[str, Any]) -> list[dict[str, Any]]:
    shown = json.dumps(dict(arguments), ensure_ascii=False)[:1500]
    return [
        {
            "type": "tool_run",
            "tool": tool,
            "arguments_summary": shown[:200],
            "outcome": "running",
            "detail": "waiting for approval",
        },
        {"type": "section", "text": f"**{agent_id}** wants to run `{tool}` with:\n```json\n{shown}\n```"},
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                {
                    "type": "button",
                    "action_id": "tool.approve",
                    "label": "Approve",
                    "style": "primary",
                    "scope": "tasks:approve",
                },
                {
                    "type": "button",
                    "action_id": "tool.deny",
                    "label": "Deny",
                    "style": "danger",
                    "scope": "tasks:approve",
                },
            ],
        },
    ]


@hookimpl
async def spacebot_before_tool_call(
    agent_id: str, channel_id: str, thread_id: str, call_id: str, tool: str, arguments: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    if _spacechat is None or tool not in _spacechat.plugin_config(PLUGIN).get("tools", []):
        return None
    if _spacechat.channel(channel_id) is None:
        return None
    card = await _spacechat.post(
        channel_id,
        f"{agent_id} asks to run {tool}",
        thread_id=thread_id,
        blocks=_card(agent_id, tool, arguments),
        author=Actor("agent", agent_id),
    )
    await _spacechat.set_state(
        PLUGIN,
        card["id"],
        {
            "agent_id": agent_id,
            "channel_id": channel_id,
            "thread_id": thread_id,
            "call_id": call_id,
            "tool": tool,
            "arguments": dict(arguments),
            "status": "pending",
        },
    )
    _waiting.add(card["id"])
    try:
        interaction = await _spacechat.wait_for_interaction(card["id"])
    except asyncio.CancelledError:
        _waiting.discard(card["id"])  # the turn was stopped; the card stays pending for later
        raise
    _waiting.discard(card["id"])
    return await _decided(card["id"], interaction)


async def _decided(message_id: str, interaction: Mapping[str, Any]) -> Mapping[str, Any]:
    approved = interaction["action_id"] == "tool.approve"
    user = interaction["user"]
    who = user["name"] or user["id"]
    await _spacechat.decide(
        message_id, "decision", f"{'Approved' if approved else 'Denied'} by {who}", Actor(user["kind"], user["id"])
    )
    await _spacechat.delete_state(PLUGIN, message_id)
    if approved:
        return {"decision": "allow", "reason": f"{who} approved it"}
    return {"decision": "deny", "reason": f"{who} denied it"}


@hookimpl
async def spacechat_interaction_submitted(
    spacechat: Any, interaction: Mapping[str, Any], message: Mapping[str, Any]
) -> bool | None:
    """A decision on a card whose turn did not survive a restart: run the approved call now."""
    if interaction["action_id"] not in ("tool.approve", "tool.deny") or message["id"] in _waiting:
        return None
    pending = await spacechat.get_state(PLUGIN, message["id"])
    if pending is None:
        return None
    decision = await _decided(message["id"], interaction)
    if decision["decision"] == "allow":
        await spacechat.run_tool_call(
            pending["agent_id"],
            {
                "kind": "approved_tool_call",
                "channel_id": pending["channel_id"],
                "thread_id": pending["thread_id"],
                "call_id": pending["call_id"],
                "tool": pending["tool"],
                "arguments": pending["arguments"],
                "message_id": message["id"],
            },
        )
    return True
