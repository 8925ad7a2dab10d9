"""What agents cost and how they run: health, agent status, thread and channel metrics, usage.

Usage answers in USD and tokens over rolling windows (the last hour, day and 30 days) and, with
`/v1/usage`, grouped by agent, model, provider, channel, team, thread, day or hour over any range.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..agents.home import find_agent, org_agents, org_status
from ..errors import BadRequest, NotFound
from ..events import now_rfc3339
from ..identity.permissions import may
from ..store import incidents as incidents_query
from ..store import messages as message_store
from ..store import usage
from .common import JSONResponse, authorize, channel_of, operation, principal, spacechat, time_param
from .context import Context


def _since_day() -> str:
    return usage.ts(datetime.now(UTC) - timedelta(days=1))


async def components(app: Context, org_id: str, instance_wide: bool) -> list[dict[str, Any]]:
    """Component health an organisation may see: the providers its agents use and the shared
    connectors (every provider with the instance role)."""
    rows = await usage.health(app.db)
    if instance_wide:
        return rows
    providers = {f"provider:{agent['provider']}" for agent in org_agents(app.host, app.instance, org_id)}
    return [row for row in rows if not row["component"].startswith("provider:") or row["component"] in providers]


@operation(
    "Health: components, host, open incidents (the caller's organisation; instance-wide figures with instance:read)",
    tags=["observability"],
    scope="diagnostics:read",
)
async def system_health(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    instance_wide = may(who, "instance:read")
    # An organisation sees its own agents and providers; the event log, the realtime gateway and
    # every organisation's agents are the instance's (issue 10: B's owner saw A's queues).
    shown = await components(app, who.org_id, instance_wide)
    states = [c["status"] for c in shown]
    overall = "down" if "down" in states else "degraded" if "degraded" in states else "ok"
    answer: dict[str, Any] = {
        "status": overall,
        "components": shown,
        "host": org_status(app.host, app.instance, None if instance_wide else who.org_id),
        "open_incidents": await incidents_query.count_open(app.db, who.org_id),
        "started_at": app.instance.started_at,
    }
    if instance_wide:
        answer["store"] = {"last_seq": app.db.last_seq, "path": app.db.path.name}
        answer["realtime"] = {
            "subscribers": app.bus.subscriber_count,
            "lagged_total": app.bus.lagged_total,
            "stalled_total": app.bus.stalled_total,
        }
        answer["gateway"] = app.gateway_id
        answer["gateways"] = gateways(app)
    return JSONResponse(answer)


def gateways(app: Context) -> list[dict[str, Any]]:
    """Every gateway this one has heard from on the bus (issue 17), itself included, with when it
    was last heard; one process without a bus is the only gateway."""
    if app.relay is None:
        return [
            {
                "id": app.gateway_id,
                "last_seen": now_rfc3339(),
                "started_at": app.instance.started_at,
                "runs_agents": True,
                "subscribers": app.bus.subscriber_count,
                "url": app.gateway_url,
                "alive": True,
            }
        ]
    return app.relay.gateways()


@operation(
    "An agent now: model and provider, health, queue, workers, latency, usage, budgets, last errors",
    tags=["observability"],
    scope="diagnostics:read",
    resource=True,
)
async def agent_status(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    agent = find_agent(app.host, app.instance, who.org_id, request.path_params["agent_id"])
    if agent is None:
        raise NotFound("no such agent")
    await authorize(request, agent)
    agent_id = agent["id"]
    status = org_status(app.host, app.instance, who.org_id) or {"agents": []}
    live: dict[str, Any] = next((a for a in status["agents"] if a["id"] == agent_id), {})
    scope = {"agent": agent_id, "org": who.org_id}
    where = "agent_id = :agent AND org_id = :org"
    return JSONResponse(
        {
            "agent": agent,
            "now": live,
            "latency": await usage.latency(app.db, where, scope, _since_day()),
            "usage": await usage.windows(app.db, where, scope),
            "budgets": await app.budgets.budget_status(agent_id),
            "errors": await usage.recent_errors(app.db, where, scope),
        }
    )


@operation(
    "A thread's metrics: tokens and cost, turns and their latency, models, errors",
    tags=["observability"],
    scope="messages:read",
    resource=True,
)
async def thread_metrics(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    thread = await message_store.get_thread(app.db, request.path_params["thread_id"])
    if thread is None:
        raise NotFound("no such thread")
    await authorize(request, thread, channel=await channel_of(app, thread["channel_id"]))
    scope = {"thread": thread["id"]}
    where = "thread_id = :thread"
    last = await usage.last_model(app.db, thread["id"])
    return JSONResponse(
        {
            "thread_id": thread["id"],
            "usage": await usage.totals(app.db, where, scope),
            "by_model": await usage.grouped(
                app.db,
                org_id=who.org_id,
                group_by=["agent", "model"],
                since="",
                until="9999",
                filters={"thread": thread["id"]},
            ),
            "latency": await usage.latency(app.db, where, scope, ""),
            "serving": dict(last) if last else None,
            "errors": await usage.recent_errors(app.db, where, scope),
        }
    )


@operation(
    "A channel's metrics: usage windows, latency, queue depth and workers per agent, errors",
    tags=["observability"],
    scope="messages:read",
    resource=True,
)
async def channel_metrics(request: Request) -> Response:
    app = spacechat(request)
    channel = await channel_of(app, request.path_params["channel_id"])
    if channel is None:
        raise NotFound("no such channel")
    await authorize(request, channel, channel=channel)
    scope = {"channel": channel["id"]}
    where = "channel_id = :channel"
    agents: list[dict[str, Any]] = []
    for agent in (org_status(app.host, app.instance, channel["org_id"]) or {"agents": []})["agents"]:
        queue = agent["queue"].get(channel["id"])
        workers = [w for w in agent["workers"] if w["channel_id"] == channel["id"]]
        running = agent["running"].get(channel["id"])
        if queue is not None or workers or running:
            agents.append(
                {
                    "id": agent["id"],
                    "model": agent["model"],
                    "provider": agent["provider"],
                    "health": agent["health"],
                    "queue": queue or 0,
                    "running": running,
                    "workers": workers,
                }
            )
    return JSONResponse(
        {
            "channel_id": channel["id"],
            "usage": await usage.windows(app.db, where, scope),
            "latency": await usage.latency(app.db, where, scope, _since_day()),
            "agents": agents,
            "errors": await usage.recent_errors(app.db, where, scope),
        }
    )


@operation(
    "Usage grouped over a time range",
    tags=["observability"],
    scope="diagnostics:read",
    query={
        "group_by": {
            "description": "comma list of agent, model, provider, channel, team, thread, day, hour",
            "type": "array",
            "items": {"type": "string", "enum": list(usage.GROUPS)},
            "style": "form",
            "explode": False,
        },
        "since": "RFC 3339 (default 30 days ago)",
        "until": "RFC 3339 (default now)",
        "agent": "",
        "model": "",
        "provider": "",
        "channel": "",
        "team": "",
        "thread": "",
    },
)
async def usage_report(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    params = request.query_params
    group_by = [g for g in (params.get("group_by") or "").split(",") if g]
    unknown = [g for g in group_by if g not in usage.GROUPS]
    if unknown:
        raise BadRequest(
            f"cannot group by {', '.join(unknown)}; use {', '.join(usage.GROUPS)}",
            details=[{"path": "group_by", "message": "unknown"}],
        )
    since = time_param(params.get("since"), "since") or usage.ts(datetime.now(UTC) - timedelta(days=30))
    until = time_param(params.get("until"), "until") or usage.ts(datetime.now(UTC) + timedelta(seconds=1))
    filters = {
        name: params[name] for name in ("agent", "model", "provider", "channel", "team", "thread") if params.get(name)
    }
    rows = await usage.grouped(app.db, org_id=who.org_id, group_by=group_by, since=since, until=until, filters=filters)
    total = await usage.grouped(app.db, org_id=who.org_id, group_by=[], since=since, until=until, filters=filters)
    return JSONResponse(
        {
            "since": since,
            "until": until,
            "group_by": group_by,
            "rows": rows,
            "total": total[0] if total else usage.empty(),
        }
    )
