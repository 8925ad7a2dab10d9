"""The hook implementations: thin, they turn host lifecycle calls into Spacechat's work.

Registered through the `spacebot` entry point group. Nothing happens unless the plugin's
config has `enabled = true`: until then every hook returns at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .app import Spacechat
from .config import ConfigError, settings_from_mapping
from .hookspecs import HostAPI, hookimpl

log = logging.getLogger("spacechat.plugin")

_app: Spacechat | None = None


def current() -> Spacechat | None:
    """The running plugin, or None when disabled or stopped."""
    return _app


# --- host life cycle -----------------------------------------------------------------------


@hookimpl
async def spacebot_startup(host: HostAPI, config: Mapping[str, Any]) -> None:
    global _app
    try:
        settings = settings_from_mapping(config)
    except ConfigError as exc:
        raise ConfigError(f"spacechat: {exc}") from None
    if not settings.enabled:
        log.info("spacechat is installed but not enabled (set enabled = true)")
        return
    app = Spacechat(settings, host)
    await app.start()
    _app = app


@hookimpl
def spacebot_server_started(url: str) -> None:
    if _app is not None:
        _app.server_started(url)


@hookimpl
def spacebot_server_stopping() -> None:
    if _app is not None:
        _app.begin_shutdown()


@hookimpl
async def spacebot_shutdown() -> None:
    global _app
    app, _app = _app, None
    if app is not None:
        await app.stop()


@hookimpl
def spacebot_register_routes() -> list[Any] | None:
    if _app is None:
        return None
    from .api import routes

    return routes(_app)


@hookimpl
async def spacebot_health_changed(component: str, status: str, detail: str | None) -> None:
    if _app is not None:
        await _app.observe.health(component=component, status=status, detail=detail)


# --- turns ---------------------------------------------------------------------------------


@hookimpl
async def spacebot_turn_started(
    agent_id: str, channel_id: str, thread_id: str, turn_id: str, model: str, provider: str, message_ids: Sequence[str]
) -> None:
    if _app is not None:
        await _app.replies.started(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            turn_id=turn_id,
            model=model,
            provider=provider,
            message_ids=message_ids,
        )


@hookimpl
async def spacebot_text_delta(turn_id: str, delta: str, aggregated_text: str) -> None:
    if _app is not None:
        await _app.replies.delta(turn_id=turn_id, delta=delta, aggregated_text=aggregated_text)


@hookimpl
async def spacebot_reasoning_delta(turn_id: str, delta: str) -> None:
    if _app is not None:
        await _app.replies.delta(turn_id=turn_id, delta=delta, aggregated_text="", kind="reasoning")


@hookimpl
async def spacebot_turn_completed(
    turn_id: str, text: str, blocks: Sequence[Mapping[str, Any]] | None, ttft_ms: int | None, duration_ms: int
) -> None:
    if _app is not None:
        await _app.replies.completed(
            turn_id=turn_id,
            text=text,
            blocks=blocks,
            metadata={"ttft_ms": ttft_ms, "duration_ms": duration_ms},
        )


@hookimpl
async def spacebot_turn_failed(turn_id: str, error: str, retryable: bool, duration_ms: int) -> None:
    if _app is not None:
        await _app.replies.failed(turn_id=turn_id, error=error, retryable=retryable, duration_ms=duration_ms)


@hookimpl
async def spacebot_outbound_message(
    agent_id: str,
    channel_id: str,
    thread_id: str | None,
    text: str,
    blocks: Sequence[Mapping[str, Any]] | None,
) -> str | None:
    if _app is None:
        return None
    return await _app.replies.outbound(
        agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, text=text, blocks=blocks
    )


# --- tools, workers, usage -----------------------------------------------------------------


@hookimpl
async def spacebot_tool_started(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    arguments: Mapping[str, Any],
) -> None:
    if _app is not None:
        await _app.activity.tool_started(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            worker_id=worker_id,
            call_id=call_id,
            tool=tool,
            arguments=arguments,
        )


@hookimpl
async def spacebot_tool_completed(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    result: str,
    duration_ms: int,
) -> None:
    if _app is not None:
        await _app.activity.tool_completed(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            worker_id=worker_id,
            call_id=call_id,
            tool=tool,
            result=result,
            duration_ms=duration_ms,
        )


@hookimpl
async def spacebot_tool_failed(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    worker_id: str | None,
    call_id: str,
    tool: str,
    error: str,
    duration_ms: int,
) -> None:
    if _app is not None:
        await _app.activity.tool_failed(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            worker_id=worker_id,
            call_id=call_id,
            tool=tool,
            error=error,
            duration_ms=duration_ms,
        )


@hookimpl
async def spacebot_worker_started(
    agent_id: str, channel_id: str | None, thread_id: str | None, worker_id: str, task: str
) -> None:
    if _app is not None:
        await _app.activity.worker_started(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, worker_id=worker_id, task=task
        )


@hookimpl
async def spacebot_worker_status(agent_id: str, worker_id: str, state: str, status: str) -> None:
    if _app is not None:
        await _app.activity.worker_status(agent_id=agent_id, worker_id=worker_id, state=state, status=status)


@hookimpl
async def spacebot_worker_idle(agent_id: str, worker_id: str) -> None:
    if _app is not None:
        await _app.activity.worker_status(
            agent_id=agent_id, worker_id=worker_id, state="waiting_for_input", status="waiting for input"
        )


@hookimpl
async def spacebot_worker_completed(agent_id: str, worker_id: str, outcome: str, result: str, success: bool) -> None:
    if _app is not None:
        await _app.activity.worker_completed(
            agent_id=agent_id, worker_id=worker_id, outcome=outcome, result=result, success=success
        )


@hookimpl
async def spacebot_worker_question_asked(
    agent_id: str, worker_id: str, question_id: str, questions: Sequence[Mapping[str, Any]]
) -> None:
    if _app is not None:
        await _app.activity.question(
            agent_id=agent_id, worker_id=worker_id, question_id=question_id, questions=[dict(q) for q in questions]
        )


@hookimpl
async def spacebot_worker_permission_asked(
    agent_id: str, worker_id: str, permission_id: str, description: str, patterns: Sequence[str]
) -> None:
    if _app is not None:
        await _app.activity.permission(
            agent_id=agent_id,
            worker_id=worker_id,
            permission_id=permission_id,
            description=description,
            patterns=list(patterns),
        )


@hookimpl
async def spacebot_branch_started(agent_id: str, channel_id: str, thread_id: str, description: str) -> None:
    if _app is not None:
        await _app.activity.status(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="branching", detail=description
        )


@hookimpl
async def spacebot_branch_completed(agent_id: str, channel_id: str, thread_id: str) -> None:
    if _app is not None:
        await _app.activity.status(
            agent_id=agent_id, channel_id=channel_id, thread_id=thread_id, status="thinking", detail=None
        )


@hookimpl
async def spacebot_connector_status(connector: str, status: str, detail: str | None) -> None:
    if _app is not None:
        health = {"connected": "ok", "disconnected": "down", "error": "down"}.get(status, "degraded")
        await _app.observe.health(component=f"connector:{connector}", status=health, detail=detail)


@hookimpl
async def spacebot_llm_usage(
    agent_id: str,
    channel_id: str | None,
    thread_id: str | None,
    turn_id: str | None,
    process_type: str,
    model: str,
    provider: str,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    reasoning_tokens: int,
    cost_usd: float | None,
) -> None:
    if _app is not None:
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
        }
        await _app.observe.usage(
            agent_id=agent_id,
            channel_id=channel_id,
            thread_id=thread_id,
            turn_id=turn_id,
            process_type=process_type,
            model=model,
            provider=provider,
            counts=counts,
            cost_usd=cost_usd,
        )
