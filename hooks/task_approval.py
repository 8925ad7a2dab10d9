"""Ready-made hook plugin: a task entering pending_approval asks for approval in the owning
agent's home channel (or the task's channel, or `[hooks.task_approval] channel`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spacechat_plugin.hookspecs import hookimpl


@hookimpl
async def spacechat_task_changed(
    spacechat: Any, task: Mapping[str, Any], previous_status: str | None, change: str
) -> None:
    if task["status"] != "pending_approval" or previous_status == "pending_approval":
        return
    config = spacechat.plugin_config("task_approval")
    home = None
    if task.get("owner_agent_id"):
        home = spacechat.agent_home(task["owner_agent_id"])
    if home is None and task.get("channel_id"):
        home = spacechat.channel(task["channel_id"])
    if home is None:
        home = spacechat.channel_named(config.get("channel", "ops"), task["org_id"])
    if home is None:
        return
    if home["id"] in await spacechat.task_card_channels(task["id"]):
        return  # the task's own card there already has Approve / Reject
    await spacechat.post_task_card(task, home["id"], text=f"Task #{task['number']} needs approval: {task['title']}")
