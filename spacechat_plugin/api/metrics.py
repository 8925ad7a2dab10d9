"""Prometheus text at `/metrics` (prometheus_client's exposition format), for a scraper holding a
token with `diagnostics:read`: its organisation's figures, and with `instance:read` (the
instance role) the instance's too: every agent, the event log, the realtime gateway. Totals are
read from the database at each scrape, so they match it exactly and survive restarts; live
gauges (subscribers, queues, workers) come from memory.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from ..agents.home import org_status
from ..identity.permissions import may
from ..store import usage
from .common import operation, principal, spacechat
from .context import Context
from .observability import components


class _Snapshot(Collector):
    def __init__(self, families: list[CounterMetricFamily | GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self):  # type: ignore[no-untyped-def]
        yield from self.families


@operation(
    "Prometheus metrics (text exposition format)",
    tags=["observability"],
    scope="diagnostics:read",
    produces="text/plain",
)
async def metrics(request: Request) -> Response:
    app = spacechat(request)
    who = await principal(request)
    db, org = app.db, who.org_id
    families: list[CounterMetricFamily | GaugeMetricFamily] = []

    messages = CounterMetricFamily("spacechat_messages", "Messages stored", labels=["author_kind", "state"])
    rows = await usage.metric_rows(db, org)
    for row in rows["messages"]:
        messages.add_metric([row[0], row[1]], row[2])
    families.append(messages)

    tokens = CounterMetricFamily("spacechat_llm_tokens", "LLM tokens used", labels=["agent", "model", "kind"])
    requests = CounterMetricFamily("spacechat_llm_requests", "LLM requests", labels=["agent", "model"])
    cost = CounterMetricFamily("spacechat_llm_cost_usd", "LLM cost in USD (priced requests)", labels=["agent", "model"])
    unpriced = CounterMetricFamily(
        "spacechat_llm_unpriced_requests", "LLM requests with no known price (not in cost)", labels=["agent", "model"]
    )
    for row in rows["usage"]:
        for index, name in enumerate(usage.COUNTERS):
            tokens.add_metric([row[0], row[1], name.removesuffix("_tokens")], row[2 + index] or 0)
        requests.add_metric([row[0], row[1]], row[7])
        if row[8] is not None:  # a model none of whose requests was priced has no cost, not $0
            cost.add_metric([row[0], row[1]], row[8])
        unpriced.add_metric([row[0], row[1]], row[9])
    families += [tokens, requests, cost, unpriced]

    turns = CounterMetricFamily("spacechat_turns", "Agent turns ended", labels=["agent", "outcome"])
    for row in rows["turns"]:
        turns.add_metric([row[0], row[1]], row[2])
    families.append(turns)

    incidents = GaugeMetricFamily("spacechat_incidents", "Incidents by status", labels=["status"])
    for row in rows["incidents"]:
        incidents.add_metric([row[0]], row[1])
    families.append(incidents)

    instance_wide = may(who, "instance:read")
    health = GaugeMetricFamily("spacechat_component_up", "1 when a component is ok", labels=["component"])
    for row in await components(app, who.org_id, instance_wide):
        health.add_metric([row["component"]], 1 if row["status"] == "ok" else 0)
    families.append(health)

    families += _agent_families(org_status(app.host, app.instance, None if instance_wide else org))
    if instance_wide:
        # The instance's own figures, for its operators' scraper only (issue 10).
        families += await _instance_families(app)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _agent_families(status: dict[str, Any] | None) -> list[CounterMetricFamily | GaugeMetricFamily]:
    queue = GaugeMetricFamily("spacechat_agent_queue_depth", "Turns waiting per agent", labels=["agent"])
    workers = GaugeMetricFamily(
        "spacechat_agent_workers", "Running workers per agent and state", labels=["agent", "state"]
    )
    for agent in (status or {"agents": []})["agents"]:
        queue.add_metric([agent["id"]], sum(agent["queue"].values()))
        states: dict[str, int] = {}
        for worker in agent["workers"]:
            states[worker["state"]] = states.get(worker["state"], 0) + 1
        for state, count in states.items():
            workers.add_metric([agent["id"], state], count)
    return [queue, workers]


async def _instance_families(app: Context) -> list[CounterMetricFamily | GaugeMetricFamily]:
    """The event log and the realtime gateway: one per instance, shared by every organisation, so
    only a token with instance:read sees them."""
    events = GaugeMetricFamily("spacechat_event_log_seq", "Newest event seq")
    events.add_metric([], app.db.last_seq)
    subscribers = GaugeMetricFamily("spacechat_realtime_subscribers", "Open realtime streams")
    subscribers.add_metric([], app.bus.subscriber_count)
    lagged = CounterMetricFamily("spacechat_realtime_lagged", "Streams cut for lagging since start")
    lagged.add_metric([], app.bus.lagged_total)
    deliveries = CounterMetricFamily(
        "spacechat_realtime_deliveries",
        "Writes of events to realtime streams since start: direct (from the fan-out itself) or by the stream's task",
        labels=["path"],
    )
    deliveries.add_metric(["direct"], app.bus.direct_writes)
    deliveries.add_metric(["task"], app.bus.task_wakes)
    return [events, subscribers, lagged, deliveries]
