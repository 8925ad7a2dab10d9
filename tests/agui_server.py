"""A real AG-UI server for the AG-UI host's tests: a Pydantic AI agent served by Pydantic AI's own
AG-UI adapter (`pydantic_ai.ui.ag_ui.AGUIAdapter`), on loopback, with `FunctionModel` standing in
for the hosted model (a hosted LLM cannot run here; everything else is the framework's real code:
the run loop, the tools, the approval interrupts, the event encoding).

The model is scripted by the last thing the person said:

- "hello": reasoning, then a streamed greeting;
- "weather": calls the server-side tool `get_weather`, then answers with its result;
- "deploy": calls `deploy`, a tool that needs approval: the run ends with an interrupt; resumed
  with an approval, the tool runs and the agent says so, with a denial it says it did not;
- "plan": calls `plan`, whose result carries AG-UI events (a step, a state snapshot and delta);
- "time": calls `current_time`, a tool the client offered in `RunAgentInput.tools` (Spacechat's
  own): the run ends with the call open, and the next run brings its result;
- "fail": the model call raises: the run ends with RUN_ERROR.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ag_ui.core import StateDeltaEvent, StateSnapshotEvent, StepFinishedEvent, StepStartedEvent
from pydantic import BaseModel, ConfigDict
from pydantic_ai import Agent, DeferredToolRequests, ToolReturn
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import (
    AgentInfo,
    DeltaThinkingCalls,
    DeltaThinkingPart,
    DeltaToolCall,
    DeltaToolCalls,
    FunctionModel,
)
from pydantic_ai.ui import StateDeps
from pydantic_ai.ui.ag_ui import AGUIAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .loopback import ThreadedServer

GREETING = "Hello from the AG-UI agent. Nice to meet you."
THOUGHT = "The person says hello; greet them back."
WEATHER = "Sunny, 24 °C"

Chunk = str | DeltaToolCalls | DeltaThinkingCalls


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    return part.content.lower()
    return ""


def _tool_result(messages: list[ModelMessage]) -> ToolReturnPart | None:
    last = messages[-1]
    if isinstance(last, ModelRequest):
        for part in last.parts:
            if isinstance(part, ToolReturnPart):
                return part
    return None


async def _words(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " " if not text.endswith(word) else word


async def model(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Chunk]:
    said, result = _last_prompt(messages), _tool_result(messages)
    if result is not None:
        async for piece in _words(_after_tool(result)):
            yield piece
        return
    if "fail" in said:
        raise RuntimeError("the model is overloaded")
    scripted = (
        ("weather", "get_weather", '{"city": "Paris"}'),
        ("deploy", "deploy", '{"env": "production"}'),
        ("plan", "plan", "{}"),
        ("time", "current_time", "{}"),
    )
    for word, tool, args in scripted:
        if word in said:
            yield {0: DeltaToolCall(name=tool, json_args=args, tool_call_id=f"call_{tool}")}
            return
    if "hello" in said:
        yield {0: DeltaThinkingPart(content=THOUGHT)}
    async for piece in _words(GREETING):
        yield piece


def _after_tool(result: ToolReturnPart) -> str:
    if result.tool_name == "get_weather":
        return f"The weather in Paris: {result.content}."
    if result.tool_name == "deploy":
        return f"Done: {result.content}." if "deployed" in str(result.content) else "I did not deploy: it was denied."
    if result.tool_name == "current_time":
        return f"Your clock says {result.content}."
    return "The plan is ready."


class Plan(BaseModel):
    """The shared state this agent keeps with its client (AG-UI `state`)."""

    model_config = ConfigDict(extra="allow")
    plan: list[str] = []
    progress: int = 0


agent = Agent(FunctionModel(stream_function=model), output_type=[str, DeferredToolRequests], deps_type=StateDeps[Plan])


@agent.tool_plain
def get_weather(city: str) -> str:
    """The weather in a city."""
    return WEATHER


@agent.tool_plain(requires_approval=True)
def deploy(env: str) -> str:
    """Deploy the release (needs a person's approval)."""
    return f"deployed to {env}"


@agent.tool_plain
def plan() -> ToolReturn:
    """Plan the work, sharing the plan as state."""
    return ToolReturn(
        return_value="planned",
        metadata=[
            StepStartedEvent(step_name="planning"),
            StateSnapshotEvent(snapshot={"plan": ["draft"], "progress": 0}),
            StateDeltaEvent(delta=[{"op": "replace", "path": "/progress", "value": 50}]),
            StepFinishedEvent(step_name="planning"),
        ],
    )


class AGUIServer:
    """The agent's AG-UI endpoint (`POST /agent`) on a loopback port, in a thread of its own;
    `requests` holds every RunAgentInput it was sent (as JSON)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""
        self._server: ThreadedServer | None = None

    async def _run(self, request: Request) -> Response:
        self.requests.append(await request.json())
        self.headers.append(dict(request.headers))
        return await AGUIAdapter.dispatch_request(request, agent=agent, deps=StateDeps(Plan()))

    def start(self) -> AGUIServer:
        app = Starlette(routes=[Route("/agent", self._run, methods=["POST"])])
        self._server = ThreadedServer(app, "AG-UI server")
        self.url = self._server.start() + "/agent"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


async def started() -> AGUIServer:
    return await asyncio.to_thread(AGUIServer().start)
