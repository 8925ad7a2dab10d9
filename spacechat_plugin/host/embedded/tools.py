"""The embedded host's built-in tools: offline and harmless, so demos and tests run anywhere.

`branch` is special: it is not run by a worker but forks a thinking branch (as Spacebot's
channel `branch` tool does).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .providers import ToolSpec

ToolFn = Callable[[Mapping[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class Tool:
    spec: ToolSpec
    run: ToolFn
    timeout_seconds: float = 30


_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise ValueError("exponent too large")
        return float(_OPS[type(node.op)](left, right))
    raise ValueError("only numbers and + - * / % ** are allowed")


async def calculate(arguments: Mapping[str, Any]) -> str:
    expression = str(arguments.get("expression", ""))
    if len(expression) > 200:
        raise ValueError("expression too long")
    value = _evaluate(ast.parse(expression, mode="eval"))
    return f"{expression} = {value:g}"


async def current_time(arguments: Mapping[str, Any]) -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def restart_service(arguments: Mapping[str, Any]) -> str:
    """A stand-in for an operational action that should need approval (hooks/tool_approval)."""
    name = str(arguments.get("service") or arguments.get("request") or "the service")
    return f"restart of {name[:60]} requested"


BUILTIN_TOOLS: dict[str, Tool] = {
    "current_time": Tool(ToolSpec("current_time", "The current date and time in UTC."), current_time),
    "calculate": Tool(
        ToolSpec(
            "calculate",
            "Evaluate an arithmetic expression.",
            {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
        ),
        calculate,
    ),
    "restart_service": Tool(
        ToolSpec(
            "restart_service",
            "Restart a named service (sensitive: may need a human's approval).",
            {"type": "object", "properties": {"service": {"type": "string"}}},
        ),
        restart_service,
    ),
}

MEMORY_SAVE_SPEC = ToolSpec(
    "memory_save",
    "Save something worth remembering to the agent's memory.",
    {
        "type": "object",
        "properties": {
            "content": {"type": "string"},
            "memory_type": {"type": "string", "enum": ["fact", "preference", "decision", "event", "todo"]},
            "importance": {"type": "number"},
        },
        "required": ["content"],
    },
)

ASK_USER_SPEC = ToolSpec(
    "ask_user",
    "Ask the people in the conversation a question and wait for their answer.",
    {
        "type": "object",
        "properties": {"question": {"type": "string"}, "options": {"type": "array", "items": {"type": "string"}}},
        "required": ["question"],
    },
)

BRANCH_SPEC = ToolSpec(
    "branch",
    "Think something through in a separate branch and return the conclusion.",
    {"type": "object", "properties": {"description": {"type": "string"}}, "required": ["description"]},
)
