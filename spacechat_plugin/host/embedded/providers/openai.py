"""An OpenAI-compatible streaming chat client (llama.cpp, vLLM, Ollama, hosted APIs).

Speaks `POST {base_url}/chat/completions` with `stream: true` and
`stream_options: {"include_usage": true}`, reading the Server-Sent Events the API documents:
`choices[0].delta.content`, `delta.reasoning_content` (vLLM, llama.cpp, DeepSeek),
`delta.tool_calls` fragments (assembled by index), and a final chunk with `usage`. Usage maps as
Spacebot maps it: input = prompt_tokens - cached - cache writes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from . import ProviderError, ProviderEvent, ReasoningDelta, TextDelta, ToolCall, ToolSpec, Usage


class OpenAIProvider:
    kind = "openai"

    def __init__(self, name: str, *, base_url: str, api_key: str = "", timeout_seconds: float = 60) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=headers)
        return self._session

    async def reconnect(self) -> None:
        await self.close()
        self._client()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def stream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[ProviderEvent]:
        calls: dict[int, dict[str, Any]] = {}
        try:
            async with self._client().post(
                f"{self.base_url}/chat/completions",
                data=orjson.dumps(_request(model, messages, tools)),
                headers={"Content-Type": "application/json"},
            ) as response:
                if response.status >= 400:
                    detail = (await response.text())[:300]
                    raise ProviderError(
                        f"{self.name} answered HTTP {response.status}: {detail}",
                        retryable=response.status in (408, 409, 429) or response.status >= 500,
                    )
                async for event in _sse_data(response.content):
                    if event == "[DONE]":
                        break
                    chunk = orjson.loads(event)
                    if chunk.get("error"):
                        raise ProviderError(f"{self.name} reported an error: {chunk['error']}")
                    for item in _chunk_events(chunk, calls):
                        yield item
        except aiohttp.ClientError as exc:
            raise ProviderError(f"could not reach {self.name}: {type(exc).__name__}") from exc
        except TimeoutError as exc:
            raise ProviderError(f"{self.name} timed out") from exc
        for call in _tool_calls(calls):
            yield call


def _request(model: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The Chat Completions request body: streamed, with usage in the last chunk."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        body["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in tools
        ]
    return body


def _chunk_events(chunk: Mapping[str, Any], calls: dict[int, dict[str, Any]]) -> list[ProviderEvent]:
    """What one streamed chunk says: reasoning and text deltas, usage; tool-call fragments are
    gathered into `calls` (by index) until the stream ends."""
    found: list[ProviderEvent] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            found.append(ReasoningDelta(delta["reasoning_content"]))
        if delta.get("content"):
            found.append(TextDelta(delta["content"]))
        for fragment in delta.get("tool_calls") or []:
            slot = calls.setdefault(fragment.get("index", 0), {"id": "", "name": "", "arguments": ""})
            slot["id"] = fragment.get("id") or slot["id"]
            function = fragment.get("function") or {}
            slot["name"] += function.get("name") or ""
            slot["arguments"] += function.get("arguments") or ""
    usage = chunk.get("usage")
    if usage:
        found.append(_usage(usage))
    return found


def _tool_calls(calls: dict[int, dict[str, Any]]) -> list[ToolCall]:
    out = []
    for index in sorted(calls):
        slot = calls[index]
        try:
            arguments = json.loads(slot["arguments"] or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": slot["arguments"]}
        out.append(
            ToolCall(slot["id"] or f"call_{index}", slot["name"], arguments if isinstance(arguments, dict) else {})
        )
    return out


def _usage(usage: Mapping[str, Any]) -> Usage:
    prompt = int(usage.get("prompt_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cached = int(prompt_details.get("cached_tokens") or 0)
    cache_write = int(prompt_details.get("cache_write_tokens") or 0)
    return Usage(
        input_tokens=max(0, prompt - cached - cache_write),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=cached,
        cache_write_tokens=cache_write,
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


async def _sse_data(content: aiohttp.StreamReader) -> AsyncIterator[str]:
    """The `data:` payloads of an SSE stream, joined per event."""
    lines: list[str] = []
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)
