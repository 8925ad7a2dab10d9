"""A local server that speaks the OpenAI chat-completions streaming wire format.

It stands in for a hosted LLM API (which cannot run here): `POST /v1/chat/completions` with
`stream: true` answers with `data: {chunk}` Server-Sent Events as the API documents them — content
deltas, `reasoning_content` deltas, `tool_calls` fragments assembled by index, a final usage chunk
with empty `choices` (`stream_options.include_usage`), then `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from .support import toml_config

REPLY = "Hello from the local model. It streams in pieces."


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_with: int | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.completions)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def chunk(
        self, delta: dict[str, Any] | None, *, finish: str | None = None, usage: dict[str, Any] | None = None
    ) -> bytes:
        body: dict[str, Any] = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.requests[-1]["model"],
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n".encode()

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.fail_with is not None:
            return web.json_response(
                {"error": {"message": "overloaded", "type": "server_error"}}, status=self.fail_with
            )
        assert body["stream"] is True
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        last = body["messages"][-1]
        tools = {t["function"]["name"] for t in body.get("tools", [])}
        if last["role"] == "user" and "time" in last["content"] and "current_time" in tools:
            await response.write(
                self.chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_abc",
                                "type": "function",
                                "function": {"name": "current_", "arguments": ""},
                            }
                        ],
                    }
                )
            )
            await response.write(
                self.chunk({"tool_calls": [{"index": 0, "function": {"name": "time", "arguments": "{"}}]})
            )
            await response.write(
                self.chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}, finish="tool_calls")
            )
            await response.write(
                self.chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57})
            )
        else:
            text = REPLY if last["role"] != "tool" else f"The tool said {last['content']}."
            await response.write(self.chunk({"role": "assistant", "reasoning_content": "thinking..."}))
            for start in range(0, len(text), 7):
                await response.write(self.chunk({"content": text[start : start + 7]}))
            await response.write(self.chunk({}, finish="stop"))
            await response.write(
                self.chunk(
                    None,
                    usage={
                        "prompt_tokens": 120,
                        "completion_tokens": 12,
                        "total_tokens": 132,
                        "prompt_tokens_details": {"cached_tokens": 100},
                        "completion_tokens_details": {"reasoning_tokens": 3},
                    },
                )
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


PRICING = """
[pricing."local-model"]
input = 1.0
output = 2.0
cache_read = 0.5
"""


def priced_agent_config(model: FakeOpenAI, extra: str = "", pricing: str = PRICING, **sections: Any) -> str:
    """A server config whose agent `llama` (in #spacebot) runs on this fake model, with a price
    table for it (`pricing`, TOML); `extra` TOML and `sections` as `toml_config` takes them."""
    return toml_config(
        f"""
[providers.local]
kind = "openai"
base_url = "{model.url}"
{pricing}
[[agents]]
id = "llama"
name = "Llama"
provider = "local"
model = "local-model-7b"
channels = ["spacebot"]
{extra}
""",
        **sections,
    )
