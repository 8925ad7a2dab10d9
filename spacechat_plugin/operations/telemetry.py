"""OpenTelemetry GenAI spans and metrics (#15), with the optional extra `spacechat[otel]`.

Follows OpenTelemetry's GenAI semantic conventions at version 1.44.0 (schema
https://opentelemetry.io/schemas/1.44.0, the `opentelemetry-semantic-conventions` 0.66b2
package; the attribute names are written out below, and a test checks them against that
package): an `invoke_agent {agent}` span per turn, a `chat {model}` span per model request and an
`execute_tool {tool}` span per tool call, with `gen_ai.*` attributes; the metrics
`gen_ai.client.token.usage`, `gen_ai.client.operation.duration` and
`gen_ai.client.operation.time_to_first_chunk`. Spans and metrics go out over OTLP/HTTP, configured
by the standard `OTEL_EXPORTER_OTLP_*` variables.

A model request's span runs from `spacebot_completion_call` to `spacebot_completion_response`
(the embedded host's model-call hooks); where a host has no such hooks (the bridge), a request is
known only when its usage is reported, which providers do at the end of a response, so its span
starts at the step before it in the turn (the turn's start or the last tool's end) and ends at
the report. While a request is served, log lines carry its `trace_id`
and `span_id` next to `request_id`; a turn links to the span of the request that delivered its
message, and records that request's id. Without the extra nothing of this is loaded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..config import TelemetryConfig
from ..events import current_request_id
from ..hookspecs import hookimpl

log = logging.getLogger("spacechat.telemetry")

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the older name of the provider attribute; both are set
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
REASONING = "gen_ai.usage.reasoning.output_tokens"
CONVERSATION = "gen_ai.conversation.id"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL = "gen_ai.tool.call.id"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"
TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"
FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
MISSING = "telemetry.enabled needs the OpenTelemetry extra: pip install 'spacechat[otel]'"


@dataclass
class TurnSpans:
    span: Any
    agent_id: str
    thread_id: str
    provider: str
    model: str
    mark: int  # when the turn's current model request began (ns)
    first_chunk: bool = False
    tools: dict[str, Any] = field(default_factory=dict)
    request: Any = None  # the chat span between the completion hooks, when the host calls them


class Telemetry:
    """Hook service: turns, model requests and tool calls as spans, usage as metrics."""

    def __init__(self, tracer_provider: Any, meter_provider: Any, agent_names: Mapping[str, str]) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer = tracer_provider.get_tracer("spacechat", schema_url=SCHEMA_URL)
        meter = meter_provider.get_meter("spacechat", schema_url=SCHEMA_URL)
        self.tokens = meter.create_histogram(TOKEN_USAGE, unit="{token}", description="Tokens used per request")
        self.duration = meter.create_histogram(DURATION, unit="s", description="GenAI operation duration")
        self.first_chunk = meter.create_histogram(FIRST_CHUNK, unit="s", description="Time to the first chunk")
        self.agent_names = dict(agent_names)
        self.turns: dict[str, TurnSpans] = {}
        self.delivered: dict[str, tuple[Any, str | None]] = {}  # message id -> (request span context, request id)
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider

    # -- requests and logs --------------------------------------------------------------------

    @contextmanager
    def request_span(self, method: str, path: str, request_id: str) -> Iterator[None]:
        """A server span around one HTTP request, so its log lines carry a trace id."""
        with self.tracer.start_as_current_span(
            f"{method} {path}", kind=self._trace.SpanKind.SERVER, attributes={"spacechat.request_id": request_id}
        ):
            yield

    def log_filter(self) -> logging.Filter:
        trace = self._trace

        class TraceIds(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                context = trace.get_current_span().get_span_context()
                if context.is_valid:
                    record.trace_id = f"{context.trace_id:032x}"
                    record.span_id = f"{context.span_id:016x}"
                return True

        return TraceIds()

    # -- hooks --------------------------------------------------------------------------------

    @hookimpl
    def spacebot_inbound_message(self, message_id: str | None) -> None:
        context = self._trace.get_current_span().get_span_context()
        if message_id and context.is_valid:
            self.delivered[message_id] = (context, current_request_id.get())
            while len(self.delivered) > 10_000:
                self.delivered.pop(next(iter(self.delivered)))

    @hookimpl
    def spacebot_turn_started(
        self, agent_id: str, thread_id: str, turn_id: str, model: str, provider: str, message_ids: Sequence[str]
    ) -> None:
        from opentelemetry.trace import Link

        links, request_ids = [], []
        for message_id in message_ids:
            found = self.delivered.pop(message_id, None)
            if found is not None:
                links.append(Link(found[0]))
                if found[1]:
                    request_ids.append(found[1])
        attributes = {
            OPERATION: "invoke_agent",
            PROVIDER: provider,
            SYSTEM: provider,
            REQUEST_MODEL: model,
            AGENT_ID: agent_id,
            AGENT_NAME: self.agent_names.get(agent_id, agent_id),
            CONVERSATION: thread_id,
        }
        if request_ids:
            attributes["spacechat.request_id"] = request_ids[-1]
        span = self.tracer.start_span(
            f"invoke_agent {self.agent_names.get(agent_id, agent_id)}",
            kind=self._trace.SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            context=self._trace.set_span_in_context(self._trace.INVALID_SPAN),
        )
        self.turns[turn_id] = TurnSpans(span, agent_id, thread_id, provider, model, time.time_ns())

    @hookimpl
    def spacebot_text_delta(self, turn_id: str) -> None:
        turn = self.turns.get(turn_id)
        if turn is not None and not turn.first_chunk:
            turn.first_chunk = True
            seconds = (time.time_ns() - turn.mark) / 1e9
            self.first_chunk.record(seconds, self._metric_attributes(turn, turn.model))

    @staticmethod
    def _metric_attributes(turn: TurnSpans, model: str) -> dict[str, str]:
        return {OPERATION: "chat", PROVIDER: turn.provider, REQUEST_MODEL: turn.model, RESPONSE_MODEL: model}

    def _chat_span(self, turn: TurnSpans, provider: str, start: int) -> Any:
        return self.tracer.start_span(
            f"chat {turn.model}",
            kind=self._trace.SpanKind.CLIENT,
            context=self._trace.set_span_in_context(turn.span),
            start_time=start,
            attributes={
                OPERATION: "chat",
                PROVIDER: provider,
                SYSTEM: provider,
                REQUEST_MODEL: turn.model,
                CONVERSATION: turn.thread_id,
                AGENT_ID: turn.agent_id,
            },
        )

    @hookimpl
    def spacebot_completion_call(self, turn_id: str | None, provider: str) -> None:
        turn = self.turns.get(turn_id or "")
        if turn is not None:
            turn.mark = time.time_ns()
            turn.request = self._chat_span(turn, provider, turn.mark)

    @hookimpl
    def spacebot_completion_response(
        self, turn_id: str | None, model: str, duration_ms: int, error: str | None
    ) -> None:
        turn = self.turns.get(turn_id or "")
        if turn is None or turn.request is None:
            return
        span, turn.request = turn.request, None
        if error is not None:
            span.set_attribute(ERROR_TYPE, "model_error")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error[:200]))
        span.end()
        self.duration.record(duration_ms / 1000, self._metric_attributes(turn, model))
        turn.mark = time.time_ns()

    @hookimpl
    def spacebot_llm_usage(
        self,
        turn_id: str | None,
        model: str,
        provider: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
    ) -> None:
        turn = self.turns.get(turn_id or "")
        if turn is None:
            return  # usage with no turn (the bridge's totals): no span to hang it on
        # Per the conventions, input tokens count cached ones too; the hook's input excludes them.
        total_input = input_tokens + cache_read_tokens + cache_write_tokens
        usage = {
            RESPONSE_MODEL: model,
            INPUT_TOKENS: total_input,
            OUTPUT_TOKENS: output_tokens,
            CACHE_READ: cache_read_tokens,
            CACHE_WRITE: cache_write_tokens,
            REASONING: reasoning_tokens,
        }
        attributes = self._metric_attributes(turn, model)
        self.tokens.record(total_input, {**attributes, TOKEN_TYPE: "input"})
        self.tokens.record(output_tokens, {**attributes, TOKEN_TYPE: "output"})
        if turn.request is not None:  # the completion hooks frame the request: they end it
            turn.request.set_attributes(usage)
            return
        now = time.time_ns()
        span = self._chat_span(turn, provider, turn.mark)
        span.set_attributes(usage)
        span.end(end_time=now)
        self.duration.record((now - turn.mark) / 1e9, attributes)
        turn.mark = now

    @hookimpl
    def spacebot_tool_started(self, turn_id: str, call_id: str, tool: str) -> None:
        turn = self.turns.get(turn_id)
        if turn is None:
            return
        turn.tools[call_id] = self.tracer.start_span(
            f"execute_tool {tool}",
            kind=self._trace.SpanKind.INTERNAL,
            context=self._trace.set_span_in_context(turn.span),
            attributes={OPERATION: "execute_tool", TOOL_NAME: tool, TOOL_CALL: call_id, AGENT_ID: turn.agent_id},
        )

    def _tool_ended(self, turn_id: str, call_id: str, error: str | None) -> None:
        turn = self.turns.get(turn_id)
        span = turn.tools.pop(call_id, None) if turn is not None else None
        if turn is None or span is None:
            return
        if error is not None:
            span.set_attribute(ERROR_TYPE, "tool_error")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error[:200]))
        span.end()
        turn.mark = time.time_ns()

    @hookimpl
    def spacebot_tool_completed(self, turn_id: str, call_id: str) -> None:
        self._tool_ended(turn_id, call_id, None)

    @hookimpl
    def spacebot_tool_failed(self, turn_id: str, call_id: str, error: str) -> None:
        self._tool_ended(turn_id, call_id, error)

    @hookimpl
    def spacebot_turn_completed(self, turn_id: str) -> None:
        self._end_turn(turn_id, None)

    @hookimpl
    def spacebot_turn_failed(self, turn_id: str, error: str) -> None:
        self._end_turn(turn_id, error)

    def _end_turn(self, turn_id: str, error: str | None) -> None:
        turn = self.turns.pop(turn_id, None)
        if turn is None:
            return
        for span in [*turn.tools.values(), *([turn.request] if turn.request is not None else [])]:
            span.end()
        if error is not None:
            turn.span.set_attribute(ERROR_TYPE, "turn_failed")
            turn.span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error[:200]))
        turn.span.end()

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            shutdown = getattr(provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


def build(config: TelemetryConfig, agent_names: Mapping[str, str]) -> Telemetry | None:
    """The telemetry service exporting over OTLP, or None (disabled, or the extra is missing:
    then a clear message, and nothing else changes)."""
    if not config.enabled:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(MISSING)
        return None
    resource = Resource.create({"service.name": config.service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    meter_provider = MeterProvider(
        resource=resource, metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]
    )
    return Telemetry(tracer_provider, meter_provider, agent_names)
