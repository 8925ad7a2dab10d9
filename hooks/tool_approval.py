"""Ready-made hook plugin: tool calls go through Spacechat's approval policies.

`spacebot_before_tool_call` asks Spacechat (`spacechat.approve_tool_call`): a tool whose policy
is `always` or `once_per_thread` posts a card in the conversation (Approve, Approve for this
thread, Deny, Deny and remember, with the tool's risk level) and holds the call (the agent's
turn stays alive; the worker shows waiting_for_input) until someone with `tasks:approve`
decides; `never` and a remembered denial refuse it at once; `auto` lets it run. Tools listed in
`[hooks.tool_approval] tools` are `always` unless a policy says otherwise (docs/observability.md,
"Approvals"). A pending approval is kept in Spacechat's store: after a restart the card still
works, and approving it then runs the tool in a new turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spacechat_plugin.hookspecs import hookimpl

_spacechat: Any = None


@hookimpl
def spacechat_ready(spacechat: Any) -> None:
    global _spacechat
    _spacechat = spacechat


@hookimpl
async def spacebot_before_tool_call(
    agent_id: str,
    channel_id: str,
    thread_id: str,
    turn_id: str,
    call_id: str,
    tool: str,
    arguments: Mapping[str, Any],
) -> Mapping[str, Any] | None:
    if _spacechat is None:
        return None
    decision: Mapping[str, Any] | None = await _spacechat.approve_tool_call(
        agent_id=agent_id,
        channel_id=channel_id,
        thread_id=thread_id,
        turn_id=turn_id,
        call_id=call_id,
        tool=tool,
        arguments=arguments,
    )
    return decision
