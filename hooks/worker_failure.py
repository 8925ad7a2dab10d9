"""Ready-made hook plugin: a failed worker posts an incident card with its error and a Retry
action (which needs `ops:retry`) in the incidents channel (`[hooks.worker_failure] channel`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spacechat_plugin.hookspecs import hookimpl

PLUGIN = "worker_failure"
_spacechat: Any = None


@hookimpl
def spacechat_ready(spacechat: Any) -> None:
    global _spacechat
    _spacechat = spacechat


@hookimpl
async def spacebot_worker_completed(agent_id: str, worker_id: str, outcome: str, result: str) -> None:
    if _spacechat is None or outcome not in ("failed", "timed_out"):
        return
    config = _spacechat.plugin_config(PLUGIN)
    place = _spacechat.worker_place(worker_id) or {}
    incidents = _spacechat.channel_named(config.get("channel", "incidents"))
    if incidents is None:
        return
    where = ""
    if place.get("thread_id"):
        where = f"\n\n[Open the conversation]({_spacechat.base_url}/c/{place['channel_id']}/t/{place['thread_id']})"
    card = await _spacechat.post(
        incidents["id"],
        f"Worker of {agent_id} {outcome.replace('_', ' ')}",
        blocks=[
            {
                "type": "status",
                "label": f"{agent_id}: worker {outcome.replace('_', ' ')}",
                "state": "error",
                "detail": result[:300],
            },
            {"type": "section", "text": f"**Error:** {result[:2000]}{where}"},
            {
                "type": "actions",
                "block_id": "incident",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "ops.retry",
                        "label": "Retry",
                        "style": "primary",
                        "scope": "ops:retry",
                    },
                ],
            },
        ],
    )
    await _spacechat.set_state(PLUGIN, card["id"], {"agent_id": agent_id, "worker_id": worker_id, **place})


@hookimpl
async def spacechat_interaction_submitted(
    spacechat: Any, interaction: Mapping[str, Any], message: Mapping[str, Any]
) -> bool | None:
    if interaction["action_id"] != "ops.retry":
        return None
    failure = await spacechat.get_state(PLUGIN, message["id"])
    if failure is None:
        return None
    user = interaction["user"]["name"] or interaction["user"]["id"]
    try:
        retried = await spacechat.retry_turn(failure["channel_id"], failure.get("thread_id"))
    except (LookupError, RuntimeError) as exc:
        await spacechat.decide(message["id"], "incident", f"Retry failed: {exc}")
        return True
    await spacechat.decide(message["id"], "incident", f"Retried by {user} (turn {retried['turn_id']})")
    return True
