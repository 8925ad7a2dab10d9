"""One `spacechat serve` with a bus (issue 17), on the run's store (SQLite by default, Postgres
with `--store=postgres`): its own commits go through the relay (published on NATS, delivered
here in seq order) and everything a single process does still works; health and /metrics name
the gateway. A real nats-server, stopped and started again, not a stand-in. The multi-gateway
tests on Postgres are in test_gateways.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from prometheus_client.parser import text_string_to_metric_families

from .buses import NatsServer, available
from .support import Server, post_messages, toml_config

pytestmark = [pytest.mark.asyncio, pytest.mark.skipif(not available(), reason="nats-server is not installed")]


async def read_messages(server: Server, count: int, after: int = 0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
        async with aconnect_sse(client, "GET", "/v1/realtime/sse", headers={"Last-Event-ID": str(after)}) as source:
            async with asyncio.timeout(30):
                async for event in source.aiter_sse():
                    if event.event == "message" and event.id:
                        data = json.loads(event.data)
                        if data["event_type"] == "message.created":
                            got.append(data)
                            if len(got) == count:
                                break
    return got


async def test_a_gateway_with_a_bus_delivers_its_own_commits_in_order_through_an_outage(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    config = toml_config(bus={"url": nats_server.url, "poll_ms": 100}, gateway={"id": "gw-1", "heartbeat_seconds": 0.2})
    server = Server(tmp_path / "data", config).start()
    try:
        general = server.channel_id("general")
        head = max(m["seq"] for m in await post_messages(server, general, 1))
        reader = asyncio.create_task(read_messages(server, 40, after=head))
        await post_messages(server, general, 20, text="before-")
        nats_server.pause()  # the bus goes away: this gateway's own events still reach its streams
        await post_messages(server, general, 20, text="during-")
        got = await reader
        seqs = [e["seq"] for e in got]
        assert seqs == sorted(set(seqs)) and len(seqs) == 40
        texts = sorted(e["payload"]["message"]["text"] for e in got)
        assert texts == sorted([f"before-{i}" for i in range(20)] + [f"during-{i}" for i in range(20)])
        nats_server.start()
        async with server.client() as client:
            health = (await client.get("/v1/system/health")).json()
            assert health["gateway"] == "gw-1"
            assert [g["id"] for g in health["gateways"]] == ["gw-1"]
            assert health["gateways"][0]["runs_agents"] is True  # no Postgres, no lease: it runs them
            async with asyncio.timeout(15):  # it reconnects to the bus by itself
                while True:
                    metrics = (await client.get("/metrics")).text
                    families = {f.name: f for f in text_string_to_metric_families(metrics)}
                    if families["spacechat_bus_connected"].samples[0].value == 1:
                        break
                    await asyncio.sleep(0.1)
        assert families["spacechat_bus_connected"].samples[0].labels == {"gateway": "gw-1"}
        relayed = {
            s.labels["way"]: s.value for s in families["spacechat_relay_events"].samples if s.name.endswith("_total")
        }
        assert relayed["published"] >= 41 and relayed["delivered"] >= 41
        subscribers = families["spacechat_realtime_subscribers"].samples[0]
        assert subscribers.labels == {"gateway": "gw-1"}
    finally:
        server.stop()


async def test_a_bus_url_that_is_not_nats_stops_start_up(tmp_path: Path) -> None:
    config = toml_config(bus={"url": "redis://127.0.0.1:6379"})
    server = Server(tmp_path / "data", config)
    with pytest.raises(RuntimeError, match=r"bus\.url: must be a NATS URL"):
        await asyncio.to_thread(server.start, 20)
