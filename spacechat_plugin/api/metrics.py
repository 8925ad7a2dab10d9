"""Prometheus text at `/metrics` (prometheus_client's exposition format), for a scraper holding a
token with `diagnostics:read`: its organisation's figures, and with `instance:read` (the
instance role) every organisation's, each series labelled `org`, and the instance's own: the
event log, the realtime gateway. Totals are
read from the database at each scrape, so they match it exactly and survive restarts; live
gauges (subscribers, queues, workers) come from memory.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from starlette.requests import Request
from starlette.responses import Response

from ..agents.home import agent_org, org_status
from ..identity.permissions import may
from ..store import tenancy, usage
from .common import operation, principal, spacechat
from .context import Context
from .observability import components

Family = CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily | InfoMetricFamily
# Asks a worker of `spacechat serve --workers` for its own figures only (see `_other_workers`).
WORKER_LOCAL = "x-spacechat-worker-local"


class _Snapshot(Collector):
    def __init__(self, families: list[Family]) -> None:
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
    instance_wide = may(who, "instance:read")
    # One organisation's figures, or with the instance role every organisation's, each series
    # labelled with its organisation (issue 10: the instance's scraper saw one organisation).
    org = None if instance_wide else who.org_id
    families: list[Family] = [await _org_family(app, org)]
    families += _count_families(await usage.metric_rows(app.db, org))

    health = GaugeMetricFamily("spacechat_component_up", "1 when a component is ok", labels=["component"])
    for row in await components(app, who.org_id, instance_wide):
        health.add_metric([row["component"]], 1 if row["status"] == "ok" else 0)
    families.append(health)

    families += _agent_families(app, org_status(app.host, app.instance, org))
    if instance_wide:
        # The instance's own figures, for its operators' scraper only (issue 10).
        families += await _instance_families(app)
        others = await _other_workers(app, request)
        for family in families:
            family.samples.extend(others.get(family.name, []))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def _org_family(app: Context, org_id: str | None) -> Family:
    """The organisations shown, id to name, for a dashboard to join on (`org` is the id, which a
    rename does not change)."""
    orgs = await tenancy.list_orgs(app.db)
    info = InfoMetricFamily("spacechat_org", "Organisations whose figures are shown", labels=["org"])
    for found in orgs:
        if org_id is None or found["id"] == org_id:
            info.add_metric([found["id"]], {"name": found["name"]})
    return info


def _count_families(rows: dict[str, list[Any]]) -> list[Family]:
    """The totals read from the database (each row led by its organisation's id)."""
    messages = CounterMetricFamily("spacechat_messages", "Messages stored", labels=["org", "author_kind", "state"])
    for row in rows["messages"]:
        messages.add_metric([row[0], row[1], row[2]], row[3])
    labels = ["org", "agent", "model"]
    tokens = CounterMetricFamily("spacechat_llm_tokens", "LLM tokens used", labels=[*labels, "kind"])
    requests = CounterMetricFamily("spacechat_llm_requests", "LLM requests", labels=labels)
    cost = CounterMetricFamily("spacechat_llm_cost_usd", "LLM cost in USD (priced requests)", labels=labels)
    unpriced = CounterMetricFamily(
        "spacechat_llm_unpriced_requests", "LLM requests with no known price (not in cost)", labels=labels
    )
    for row in rows["usage"]:
        for index, name in enumerate(usage.COUNTERS):
            tokens.add_metric([row[0], row[1], row[2], name.removesuffix("_tokens")], row[3 + index] or 0)
        requests.add_metric([row[0], row[1], row[2]], row[8])
        if row[9] is not None:  # a model none of whose requests was priced has no cost, not $0
            cost.add_metric([row[0], row[1], row[2]], row[9])
        unpriced.add_metric([row[0], row[1], row[2]], row[10])
    turns = CounterMetricFamily("spacechat_turns", "Agent turns ended", labels=["org", "agent", "outcome"])
    for row in rows["turns"]:
        turns.add_metric([row[0], row[1], row[2]], row[3])
    incidents = GaugeMetricFamily("spacechat_incidents", "Incidents by status", labels=["org", "status"])
    for row in rows["incidents"]:
        incidents.add_metric([row[0], row[1]], row[2])
    return [messages, tokens, requests, cost, unpriced, turns, incidents]


def _agent_families(app: Context, status: dict[str, Any] | None) -> list[Family]:
    queue = GaugeMetricFamily("spacechat_agent_queue_depth", "Turns waiting per agent", labels=["org", "agent"])
    workers = GaugeMetricFamily(
        "spacechat_agent_workers", "Running workers per agent and state", labels=["org", "agent", "state"]
    )
    for agent in (status or {"agents": []})["agents"]:
        org = agent_org(app.instance, agent["id"])
        queue.add_metric([org, agent["id"]], sum(agent["queue"].values()))
        states: dict[str, int] = {}
        for worker in agent["workers"]:
            states[worker["state"]] = states.get(worker["state"], 0) + 1
        for state, count in states.items():
            workers.add_metric([org, agent["id"], state], count)
    return [queue, workers]


async def _instance_families(app: Context) -> list[Family]:
    """The event log and the realtime gateway: one per instance, shared by every organisation, so
    only a token with instance:read sees them. A process's own figures carry its `gateway` label:
    with several gateways (issue 17) each is scraped on its own, and a dashboard adds them up."""
    gateway = [app.gateway_id]
    events = GaugeMetricFamily("spacechat_event_log_seq", "Newest event seq")
    events.add_metric([], app.db.last_seq)
    commits = CounterMetricFamily(
        "spacechat_store_commits",
        "Group commits this gateway made since start: each is one transaction and one fsync, for"
        " however many writes were waiting",
        labels=["gateway"],
    )
    commits.add_metric(gateway, app.db.commits)
    subscribers = GaugeMetricFamily("spacechat_realtime_subscribers", "Open realtime streams", labels=["gateway"])
    subscribers.add_metric(gateway, app.bus.subscriber_count)
    lagged = CounterMetricFamily("spacechat_realtime_lagged", "Streams cut for lagging since start", labels=["gateway"])
    lagged.add_metric(gateway, app.bus.lagged_total)
    stalled = CounterMetricFamily(
        "spacechat_realtime_stalled",
        "Streams dropped since start because their client took nothing for realtime.stall_seconds",
        labels=["gateway"],
    )
    stalled.add_metric(gateway, app.bus.stalled_total)
    deliveries = CounterMetricFamily(
        "spacechat_realtime_deliveries",
        "Writes of events to realtime streams since start: direct (from the fan-out itself) or by the stream's task",
        labels=["gateway", "path"],
    )
    deliveries.add_metric([*gateway, "direct"], app.bus.direct_writes)
    deliveries.add_metric([*gateway, "task"], app.bus.task_wakes)
    parked = GaugeMetricFamily(
        "spacechat_realtime_parked",
        "Open realtime streams that are parked: caught up, with no task of their own, by transport (sse, ws)",
        labels=["gateway", "transport"],
    )
    for transport, count in app.bus.parked.items():
        parked.add_metric([*gateway, transport], count)
    lag = HistogramMetricFamily(
        "spacechat_event_loop_lag_seconds",
        "How much later than asked the event loop ran a timer (sampled every 0.1 s): time it spent"
        " on work it could not put down; every request and stream waits that long",
        labels=["gateway"],
    )
    lag.add_metric(gateway, app.loop_lag.cumulative(), sum_value=app.loop_lag.sum)
    return [events, commits, subscribers, lagged, stalled, deliveries, parked, lag, *_relay_families(app)]


def _relay_families(app: Context) -> list[Family]:
    """How events reach this gateway from the others: over the bus, or read from the log when
    the bus had not brought them (a high `log` share means the bus is losing messages)."""
    relay = app.relay
    if relay is None:
        return []
    gateway = [app.gateway_id]
    relayed = CounterMetricFamily(
        "spacechat_relay_events",
        "Events through the gateway relay since start: published (committed here), bus (received),"
        " log (read to fill a gap), duplicate (dropped), delivered (to this gateway's streams);"
        " control: messages from other gateways (sign-in attempts, presence)",
        labels=["gateway", "way"],
    )
    stats = relay.stats
    for way, value in (
        ("published", stats.published),
        ("bus", stats.received),
        ("log", stats.filled),
        ("duplicate", stats.duplicates),
        ("delivered", stats.delivered),
        ("control", stats.controls),
    ):
        relayed.add_metric([*gateway, way], value)
    connected = GaugeMetricFamily(
        "spacechat_bus_connected", "1 while the gateway is connected to the bus", labels=["gateway"]
    )
    connected.add_metric(gateway, 1 if stats.connected else 0)
    reconnects = CounterMetricFamily(
        "spacechat_bus_reconnects", "Reconnections to the bus since start", labels=["gateway"]
    )
    reconnects.add_metric(gateway, stats.reconnects)
    delivered = GaugeMetricFamily(
        "spacechat_relay_delivered_seq", "Newest seq delivered to this gateway's streams", labels=["gateway"]
    )
    delivered.add_metric(gateway, relay.delivered)
    waits = CounterMetricFamily(
        "spacechat_relay_read_waits",
        "Requests that waited for this gateway to catch up with the log before being answered (the"
        " read barrier, bus.read_wait_ms): caught_up, or timed_out (answered with what it knew)",
        labels=["gateway", "outcome"],
    )
    waits.add_metric([*gateway, "caught_up"], stats.waited - stats.waits_timed_out)
    waits.add_metric([*gateway, "timed_out"], stats.waits_timed_out)
    return [relayed, connected, reconnects, delivered, waits]


async def _other_workers(app: Context, request: Request) -> dict[str, list[Sample]]:
    """With `spacechat serve --workers`, a scrape of the shared port reaches one worker: it adds
    the other workers' own series (those labelled `gateway`), asked of each on its own socket
    with the scraper's credentials, so one scrape shows the whole server."""
    if app.worker is None or app.relay is None or request.headers.get(WORKER_LOCAL):
        return {}
    urls = [g["url"] for g in app.relay.gateways() if g.get("id") != app.gateway_id and g["alive"] and g.get("url")]
    headers = {name: value for name in ("authorization", "cookie") if (value := request.headers.get(name))}
    headers[WORKER_LOCAL] = "1"
    async with httpx.AsyncClient(timeout=2) as client:
        answers = await asyncio.gather(
            *(client.get(f"{url}/metrics", headers=headers) for url in urls), return_exceptions=True
        )
    found: dict[str, list[Sample]] = defaultdict(list)
    for answer in answers:
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            for family in text_string_to_metric_families(answer.text):
                if any("gateway" in sample.labels for sample in family.samples):
                    found[family.name].extend(family.samples)
    return found
