"""Ready-made hook plugin: a worker that ends failed or timed out opens an incident in the
incidents channel, with its error, a hint, and a Retry action (needing `ops:retry`) that runs the
conversation's last turn again."""

from __future__ import annotations

from typing import Any

from spacechat_plugin.hookspecs import hookimpl

_spacechat: Any = None


@hookimpl
def spacechat_ready(spacechat: Any) -> None:
    global _spacechat
    _spacechat = spacechat


@hookimpl
async def spacebot_worker_completed(agent_id: str, worker_id: str, outcome: str, result: str) -> None:
    if _spacechat is None or outcome not in ("failed", "timed_out"):
        return
    place = _spacechat.worker_place(worker_id) or {}
    details: dict[str, Any] = {
        "agent_id": agent_id,
        "worker_id": worker_id,
        "error": result[:2000],
        "hint": _spacechat.remediation_hint(result),
    }
    if place.get("channel_id"):
        details["retry"] = {"channel_id": place["channel_id"], "thread_id": place.get("thread_id")}
        details["link"] = f"{_spacechat.base_url}/c/{place['channel_id']}/t/{place.get('thread_id')}"
    await _spacechat.open_incident(
        kind="worker_failure",
        title=f"A worker of {agent_id} {outcome.replace('_', ' ')}",
        details=details,
    )
