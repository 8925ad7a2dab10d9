"""One AG-UI endpoint: the connection, one run's request and event stream, and what Spacechat
keeps of each thread between runs.

AG-UI (docs.ag-ui.com; the `ag-ui-protocol` package's types) runs an agent with one HTTP request:
`POST <url>` with a `RunAgentInput` (thread id, run id, the whole conversation as messages, the
tools the client offers, the shared state, and `resume` answers to a previous run's interrupts),
answered by a Server-Sent Events stream of events, one JSON object per `data:` line, each with
its `type`. The server keeps nothing between runs: the client sends the conversation every time,
so Spacechat keeps each thread's AG-UI messages and state here (in memory, bounded).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..embedded.providers import ProviderError, ProviderEvent, ToolSpec
from ..sse import SSEParser

try:  # the `agui` extra
    import jsonpatch
    from ag_ui.core import Event, RunAgentInput
    from pydantic import TypeAdapter, ValidationError
except ImportError:  # pragma: no cover - the message below is what a user without the extra sees
    AVAILABLE = False
else:
    AVAILABLE = True
    EVENTS: TypeAdapter[Any] = TypeAdapter(Event)

log = logging.getLogger("spacechat.host.agui")

PROTOCOL_VERSION = "1.0"
MAX_THREADS = 10_000
MAX_MESSAGES = 200
MISSING = "an AG-UI provider needs the agui extra: pip install 'spacechat[agui]'"


@dataclass
class Thread:
    """What the AG-UI agent has seen of one Spacechat thread: the conversation as AG-UI messages,
    the shared state it last sent (STATE_SNAPSHOT / STATE_DELTA), and the tool calls it made."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    def apply_delta(self, delta: Sequence[Any]) -> None:
        """STATE_DELTA is an RFC 6902 JSON Patch of the state."""
        operations = [
            op.model_dump(mode="json", by_alias=True, exclude_none=True) if hasattr(op, "model_dump") else op
            for op in delta
        ]
        self.state = jsonpatch.apply_patch(self.state, operations)

    def trim(self) -> None:
        """Keep the latest messages, never starting on a tool result whose call was cut off."""
        if len(self.messages) > MAX_MESSAGES:
            del self.messages[: len(self.messages) - MAX_MESSAGES]
            while self.messages and self.messages[0].get("role") == "tool":
                del self.messages[0]


class AguiAgent:
    """A provider whose turns an AG-UI endpoint runs whole (host/agui/run.py): its `stream` is
    never asked for single model requests."""

    kind = "agui"

    def __init__(self, name: str, *, url: str, headers: Mapping[str, str], timeout_seconds: float) -> None:
        if not AVAILABLE:
            raise RuntimeError(MISSING)
        self.name = name
        self.url = url
        self.headers = dict(headers)
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds)
        self.threads: OrderedDict[tuple[str, str, str], Thread] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None

    def thread(self, agent_id: str, channel_id: str, thread_id: str) -> Thread:
        key = (agent_id, channel_id, thread_id)
        found = self.threads.get(key)
        if found is None:
            found = self.threads[key] = Thread()
            while len(self.threads) > MAX_THREADS:
                self.threads.popitem(last=False)
        self.threads.move_to_end(key)
        return found

    def states(self, agent_id: str) -> dict[str, dict[str, Any]]:
        """The shared state of each of this agent's threads that has one, by thread id."""
        return {key[2]: thread.state for key, thread in self.threads.items() if key[0] == agent_id and thread.state}

    async def stream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[ProviderEvent]:
        """An AG-UI agent runs whole turns; a single model request (a branch) is not one."""
        raise ProviderError("an AG-UI agent runs whole turns, not single model requests", retryable=False)
        yield  # pragma: no cover - makes this an async generator

    async def reconnect(self) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def run_input(
        self,
        *,
        thread_id: str,
        run_id: str,
        thread: Thread,
        tools: Sequence[ToolSpec],
        resume: Sequence[Mapping[str, Any]] | None,
        context: Sequence[Mapping[str, str]],
    ) -> dict[str, Any]:
        """A `RunAgentInput`, checked against the protocol's own model, as its JSON wire form."""
        body: dict[str, Any] = {
            "threadId": thread_id,
            "runId": run_id,
            "protocolVersion": PROTOCOL_VERSION,
            "messages": thread.messages,
            "tools": [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools],
            "state": thread.state,
            "context": list(context),
            "forwardedProps": {},
        }
        if resume:
            body["resume"] = list(resume)
        checked: dict[str, Any] = RunAgentInput.model_validate(body).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        return checked

    async def run(self, body: Mapping[str, Any]) -> AsyncIterator[Any]:
        """POST one run and yield its events as `ag_ui.core` models. A malformed or unknown event
        is logged with its type and skipped; a refused request or a lost connection is a
        ProviderError (the endpoint's health, not the run's outcome)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self.headers)
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        try:
            async with self._session.post(
                self.url, data=json.dumps(body), headers=headers, timeout=self.timeout
            ) as response:
                if response.status != 200:
                    detail = (await response.text())[:200]
                    raise ProviderError(
                        f"the AG-UI agent answered HTTP {response.status}" + (f": {detail}" if detail else ""),
                        retryable=response.status >= 500 or response.status == 429,
                    )
                parser = SSEParser()
                async for chunk in response.content.iter_any():
                    for _, data in parser.feed(chunk):
                        event = _parse(data)
                        if event is not None:
                            yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"the AG-UI agent is unreachable ({type(exc).__name__}: {exc})"[:300]) from None


def _parse(data: str) -> Any:
    try:
        return EVENTS.validate_json(data)
    except ValidationError:
        try:
            kind = json.loads(data).get("type", "?")
        except (ValueError, AttributeError):
            kind = "not JSON"
        log.warning("malformed or unknown AG-UI event %s skipped", kind)
        return None
