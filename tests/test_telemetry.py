"""OpenTelemetry GenAI spans and metrics, captured by the SDK's in-memory exporters while the
hooks of a turn (a model request that calls a tool, the tool, a second request) arrive as the
embedded host calls them; the attribute names are the conventions' (checked against the
semantic-conventions package); and without the extra, nothing is built."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as semconv
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.schemas import Schemas

from spacechat_plugin.config import TelemetryConfig
from spacechat_plugin.operations import telemetry
from spacechat_plugin.operations.telemetry import Telemetry


@pytest.fixture
def captured() -> tuple[Telemetry, InMemorySpanExporter, InMemoryMetricReader]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    return Telemetry(tracer_provider, MeterProvider(metric_readers=[metrics]), {"llama": "Llama"}), spans, metrics


def a_turn(service: Telemetry) -> None:
    base: dict[str, Any] = {"turn_id": "turn_1"}
    service.spacebot_turn_started(
        agent_id="llama", thread_id="thr_9", turn_id="turn_1", model="local-7b", provider="local", message_ids=["m1"]
    )
    usage: dict[str, Any] = {"model": "local-7b", "provider": "local", "cache_write_tokens": 0, "reasoning_tokens": 0}
    service.spacebot_llm_usage(**base, **usage, input_tokens=20, output_tokens=5, cache_read_tokens=100)
    service.spacebot_tool_started(**base, call_id="call_1", tool="current_time")
    service.spacebot_tool_completed(**base, call_id="call_1")
    service.spacebot_text_delta(**base)
    service.spacebot_llm_usage(**base, **usage, input_tokens=30, output_tokens=12, cache_read_tokens=0)
    service.spacebot_turn_completed(**base)


def test_spans_follow_the_genai_conventions(captured: tuple[Telemetry, InMemorySpanExporter, Any]) -> None:
    service, spans, _ = captured
    a_turn(service)
    finished = {span.name: span for span in spans.get_finished_spans()}
    assert sorted(finished) == ["chat local-7b", "execute_tool current_time", "invoke_agent Llama"]
    agent = finished["invoke_agent Llama"]
    assert agent.attributes is not None
    assert agent.attributes[semconv.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert (
        agent.attributes[semconv.GEN_AI_AGENT_ID] == "llama" and agent.attributes[semconv.GEN_AI_AGENT_NAME] == "Llama"
    )
    assert agent.attributes[semconv.GEN_AI_CONVERSATION_ID] == "thr_9"
    assert agent.attributes[semconv.GEN_AI_PROVIDER_NAME] == "local"
    chats = [span for span in spans.get_finished_spans() if span.name == "chat local-7b"]
    assert len(chats) == 2
    first = chats[0].attributes
    assert first is not None
    assert first[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 120, "input counts the cached tokens too"
    assert first[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert first[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert first[semconv.GEN_AI_REQUEST_MODEL] == "local-7b" and first[semconv.GEN_AI_RESPONSE_MODEL] == "local-7b"
    assert first[semconv.GEN_AI_SYSTEM] == "local"
    tool = finished["execute_tool current_time"]
    assert tool.attributes is not None and tool.attributes[semconv.GEN_AI_TOOL_CALL_ID] == "call_1"
    for child in (*chats, tool):
        assert child.parent is not None and child.parent.span_id == agent.context.span_id
        assert child.context.trace_id == agent.context.trace_id
    assert chats[1].start_time is not None and tool.end_time is not None
    assert chats[1].start_time >= tool.end_time, "the second request starts where the tool ended"
    assert agent.instrumentation_scope is not None
    assert agent.instrumentation_scope.schema_url == Schemas.V1_44_0.value == telemetry.SCHEMA_URL


def test_metrics_carry_the_token_counts(captured: tuple[Telemetry, Any, InMemoryMetricReader]) -> None:
    service, _, reader = captured
    a_turn(service)
    data = reader.get_metrics_data()
    assert data is not None
    found = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert set(found) == {
        gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
    }
    points: list[Any] = list(found[gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE].data.data_points)
    sums = {point.attributes[semconv.GEN_AI_TOKEN_TYPE]: point.sum for point in points}
    assert sums == {"input": 120 + 30, "output": 5 + 12}
    durations: list[Any] = list(found[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION].data.data_points)
    assert sum(p.count for p in durations) == 2


def test_log_lines_in_a_request_carry_its_trace_id(captured: tuple[Telemetry, InMemorySpanExporter, Any]) -> None:
    service, spans, _ = captured
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    with service.request_span("POST", "/v1/channels/c/messages", "req_1"):
        service.log_filter().filter(record)
    span = spans.get_finished_spans()[0]
    assert span.attributes is not None and span.attributes["spacechat.request_id"] == "req_1"
    assert getattr(record, "trace_id", None) == f"{span.context.trace_id:032x}"
    assert getattr(record, "span_id", None) == f"{span.context.span_id:016x}"


def test_without_the_extra_nothing_is_built(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert telemetry.build(TelemetryConfig(enabled=False), {}) is None
    for name in list(sys.modules):
        if name.startswith("opentelemetry.exporter") or name.startswith("opentelemetry.sdk"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)
    with caplog.at_level(logging.WARNING, logger="spacechat.telemetry"):
        assert telemetry.build(TelemetryConfig(enabled=True), {}) is None
    assert "pip install 'spacechat[otel]'" in caplog.text


def test_the_model_call_hooks_frame_the_chat_span(captured: tuple[Telemetry, InMemorySpanExporter, Any]) -> None:
    """The embedded host calls spacebot_completion_call / _response around each request: the
    span is exactly that request, with its usage, and a failed request is an error span."""
    service, spans, _ = captured
    service.spacebot_turn_started(
        agent_id="llama", thread_id="thr_1", turn_id="t", model="local-7b", provider="local", message_ids=[]
    )
    service.spacebot_completion_call(turn_id="t", provider="local")
    service.spacebot_llm_usage(
        turn_id="t",
        model="local-7b",
        provider="local",
        input_tokens=7,
        output_tokens=3,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
    )
    assert [s.name for s in spans.get_finished_spans()] == [], "the request is still open"
    service.spacebot_completion_response(turn_id="t", model="local-7b", duration_ms=42, error=None)
    service.spacebot_completion_call(turn_id="t", provider="local")
    service.spacebot_completion_response(turn_id="t", model="local-7b", duration_ms=5, error="HTTP 503")
    service.spacebot_turn_failed(turn_id="t", error="HTTP 503")
    done = spans.get_finished_spans()
    assert [s.name for s in done] == ["chat local-7b", "chat local-7b", "invoke_agent Llama"]
    first, failed, turn = done
    assert first.attributes is not None and first.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert failed.attributes is not None and failed.attributes["error.type"] == "model_error"
    assert not failed.status.is_ok and not turn.status.is_ok
