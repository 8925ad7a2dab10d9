"""OpenTelemetry end to end: `spacechat serve` with `[telemetry] enabled = true` exports its
GenAI spans and metrics over OTLP/HTTP to a local collector, configured only by the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` variable. The collector stands in for an OpenTelemetry Collector
(which cannot run here) and speaks its documented wire format: `POST /v1/traces` and
`/v1/metrics` with a protobuf `ExportTraceServiceRequest` / `ExportMetricsServiceRequest`
(opentelemetry-proto, the OTLP specification's own definitions), answered with an empty 200."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .support import Server, toml_config, wait_for_message

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


class Collector:
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> Collector:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        export = ExportMetricsServiceRequest()
        export.ParseFromString(await request.read())
        self.metrics += [m.name for r in export.resource_metrics for s in r.scope_metrics for m in s.metrics]
        return web.Response(body=b"", content_type="application/x-protobuf")


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in span.attributes:
        value = item.value
        out[item.key] = value.string_value if value.HasField("string_value") else value.int_value
    return out


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    running = await Collector().start()
    yield running
    await running.stop()


async def until(predicate: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_a_turn_is_exported_as_genai_spans_and_metrics(tmp_path: Path, collector: Collector) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
    }
    server = Server(tmp_path / "data", toml_config(telemetry={"enabled": True}), env=env)
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as client:
            spacebot = server.channel_id("spacebot")
            posted = await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "what time is it?"})
        thread_id = posted.json()["thread"]["id"]
        request_id = posted.headers["x-request-id"]
        await asyncio.to_thread(
            wait_for_message, server, thread_id, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed"
        )
        wanted = {"invoke_agent Spacebot", "chat scripted-1", "execute_tool current_time"}
        await until(lambda: wanted <= {span.name for span in collector.spans})
        by_name = {span.name: span for span in collector.spans}
        agent = by_name["invoke_agent Spacebot"]
        turn = attributes(agent)
        assert turn["gen_ai.operation.name"] == "invoke_agent" and turn["gen_ai.conversation.id"] == thread_id
        assert turn["gen_ai.agent.id"] == "spacebot" and turn["spacechat.request_id"] == request_id
        chats = [span for span in collector.spans if span.name == "chat scripted-1"]
        assert len(chats) == 2 and all(span.parent_span_id == agent.span_id for span in chats)
        with server.sync_client() as sync:
            usage = sync.get("/v1/usage", params={"thread": thread_id}).json()["total"]
        exported_input = sum(attributes(span)["gen_ai.usage.input_tokens"] for span in chats)
        exported_output = sum(attributes(span)["gen_ai.usage.output_tokens"] for span in chats)
        assert (exported_input, exported_output) == (usage["input_tokens"], usage["output_tokens"])
        request_spans = [span for span in collector.spans if attributes(span).get("spacechat.request_id") == request_id]
        server_span = next(span for span in request_spans if span.name.startswith("POST "))
        assert [link.span_id for link in agent.links] == [server_span.span_id], "the turn links to its request"
        # Metrics go out every 300 ms, cumulatively: an export can fall between the first model
        # request's usage and the second one's first text chunk, so wait for all three names.
        metrics = {
            "gen_ai.client.token.usage",
            "gen_ai.client.operation.duration",
            "gen_ai.client.operation.time_to_first_chunk",
        }
        await until(lambda: metrics <= set(collector.metrics))
    finally:
        await asyncio.to_thread(server.stop)
