"""The offline scripted provider: a believable agent with no network.

It streams a reply at a human-readable pace, calls a tool when asked about the time or a sum,
thinks in a branch when asked to plan, and attaches a card when asked for one. Everything is
decided from the last user message, so tests and demos are reproducible.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ....events import new_id
from . import Card, ProviderError, ProviderEvent, ReasoningDelta, TextDelta, ToolCall, ToolSpec, Usage

_CHOSE = re.compile(r"\[interaction\] .*? chose “(?P<label>[^”]*)”")
_MATH = re.compile(r"(-?\d+(?:\.\d+)?(?:\s*[-+*/]\s*-?\d+(?:\.\d+)?)+)")
CHUNK = 6


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class ScriptedProvider:
    kind = "scripted"

    def __init__(self, name: str, *, chars_per_second: float = 400) -> None:
        self.name = name
        self.chars_per_second = chars_per_second
        # Set by a test or an operator drill to make every request fail until cleared.
        self.failing: str | None = None

    async def reconnect(self) -> None:
        self.failing = None

    async def close(self) -> None:
        return None

    async def stream(
        self, *, model: str, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> AsyncIterator[ProviderEvent]:
        if self.failing:
            raise ProviderError(self.failing)
        prompt_chars = sum(len(str(m.get("content") or "")) for m in messages)
        last = messages[-1] if messages else {}
        tool_names = {tool.name for tool in tools}
        reasoning = ""
        branch = bool(messages) and str(messages[0].get("content") or "").startswith("[branch]")
        if branch:
            subject = " ".join(str(last.get("content") or "").split())[:120]
            reasoning = "Weighing the options and what could go wrong."
            reply, card = (
                f"Conclusion on '{subject}': start with the smallest step that proves the idea.",
                None,
            )
        elif last.get("role") == "tool":
            reply = self._after_tool(messages)
            card = None
        else:
            text = str(last.get("content") or "")
            lowered = text.lower()
            call = self._tool_for(text, lowered, tool_names)
            if call is not None:
                yield Usage(input_tokens=max(1, prompt_chars // 4), output_tokens=_tokens(str(call.arguments)))
                yield call
                return
            if "plan" in lowered or "think" in lowered:
                reasoning = "Let me break this down: what is asked, what I know, and what to do first."
            reply, card = self._reply(text, lowered)
        for start in range(0, len(reasoning), CHUNK):
            await asyncio.sleep(CHUNK / self.chars_per_second)
            yield ReasoningDelta(reasoning[start : start + CHUNK])
        for start in range(0, len(reply), CHUNK):
            await asyncio.sleep(CHUNK / self.chars_per_second)
            yield TextDelta(reply[start : start + CHUNK])
        if card is not None:
            yield Card(card)
        yield Usage(
            input_tokens=max(1, prompt_chars // 4),
            output_tokens=_tokens(reply),
            reasoning_tokens=_tokens(reasoning) if reasoning else 0,
        )

    def _tool_for(self, text: str, lowered: str, tools: set[str]) -> ToolCall | None:
        if "branch" in tools and ("plan" in lowered or "think" in lowered):
            return ToolCall(new_id("call"), "branch", {"description": f"Think through: {text[:120]}"})
        if "memory_save" in tools and "remember that" in lowered:
            content = text[lowered.index("remember that") + len("remember that") :].strip(" .")
            return ToolCall(new_id("call"), "memory_save", {"content": content, "memory_type": "fact"})
        if "ask_user" in tools and "ask me" in lowered:
            question = "Which environment should I use?"
            return ToolCall(new_id("call"), "ask_user", {"question": question, "options": ["staging", "production"]})
        if "restart_service" in tools and "restart" in lowered:
            return ToolCall(new_id("call"), "restart_service", {"service": text.split()[-1].strip(".!?")})
        if "current_time" in tools and "time" in lowered:
            return ToolCall(new_id("call"), "current_time", {})
        match = _MATH.search(text)
        if "calculate" in tools and match and ("calc" in lowered or "what is" in lowered or "sum" in lowered):
            return ToolCall(new_id("call"), "calculate", {"expression": match.group(1)})
        for tool in sorted(tools):
            if f"use {tool}" in lowered:
                return ToolCall(new_id("call"), tool, {"request": text[:200]})
        return None

    def _after_tool(self, messages: Sequence[Mapping[str, Any]]) -> str:
        result = str(messages[-1].get("content") or "")
        name = str(messages[-1].get("name") or "the tool")
        if name == "branch":
            return f"I thought it through. {result}"
        if name == "memory_save":
            return f"Noted. ({result})"
        if name == "ask_user":
            return f"Thanks. {result}"
        if result.startswith(("Tool denied", "Tool skipped", "Tool error")):
            return f"I could not use {name}: {result}"
        return f"I used `{name}` and got: **{result}**"

    @staticmethod
    def _answer_interaction(text: str) -> str:
        """An act on one of its cards, answered as an agent would (host.interaction_note)."""
        chose = _CHOSE.search(text)
        label = chose.group("label") if chose else ""
        if label.lower() in ("approve", "approved"):
            return "Approved. Deploying to staging now; I will post here when it is live."
        if label.lower() in ("reject", "rejected"):
            return "Rejected. I will not deploy; tell me what should change first."
        if "submitted the form" in text:
            return "Thanks, I have your answers."
        if " voted " in text:
            return "Thanks for voting."
        return f"Got it: {label}." if label else "Got it."

    def _reply(self, text: str, lowered: str) -> tuple[str, list[dict[str, Any]] | None]:
        card: list[dict[str, Any]] | None = None
        if "[interaction] " in text:
            return self._answer_interaction(text), None
        if "card" in lowered or "approval" in lowered:
            card = [
                {"type": "section", "text": "**Deploy to staging?** The build passed all checks."},
                {
                    "type": "actions",
                    "block_id": "decision",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "approve",
                            "label": "Approve",
                            "style": "primary",
                            "value": "yes",
                        },
                        {
                            "type": "button",
                            "action_id": "reject",
                            "label": "Reject",
                            "style": "danger",
                            "value": "no",
                        },
                    ],
                },
            ]
            return "Here is a card for you to act on.", card
        quoted = " ".join(text.split())
        if len(quoted) > 160:
            quoted = quoted[:159] + "…"
        reply = (
            f"You said: *{quoted}*\n\n"
            "I am Spacebot's offline scripted agent. I can:\n"
            "- tell you the **time** (I call a tool),\n"
            "- **calculate** sums like `2 + 3 * 4`,\n"
            "- **plan** things in a thinking branch,\n"
            "- post an approval **card**."
        )
        return reply, card
