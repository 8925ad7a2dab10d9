"""Catching up with Spacebot where its stream cannot: backfill after lost events, and usage.

Spacebot's `/api/events` has no replay: after a `lagged {"skipped": N}` frame (a slow reader lost
N events) or a reconnection, the bridge reads each open conversation's history
(`GET /api/portal/history?agent_id&session_id&limit`, `[{id, role, content}]` oldest first,
src/api/portal.rs) and delivers the replies it missed, once:

- a conversation's first send in this process takes a *baseline* (the ids already in its history:
  replies Spacechat got before, or never asked for, are never delivered again);
- every reply delivered (live or by backfill) is remembered until its history row is seen, so a
  row whose text was already delivered is only marked known;
- a reply the backfill delivered is remembered too, so if the live stream brings it after all it
  is not shown twice.

Usage: `GET /api/usage` per agent and model, and `GET /api/usage/conversation/{session_id}` per
Spacechat thread (src/api/usage.rs), both cumulative; each increase becomes one
`spacebot_llm_usage`. A thread's usage is reported with its thread (Spacebot's conversation route
does not split it by model: it carries the model that grew most in that poll), and the agent's
remaining usage (other adapters, the cortex, compaction) without one, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from ..hooks import HookRunner
from .conversations import PROVIDER, Conversation, ConversationState, reason, remember, take

log = logging.getLogger("spacechat.host.bridge")

HISTORY_LIMIT = 50
BASELINE_LIMIT = 200  # Spacebot's cap on /api/portal/history
RECENT_SECONDS = 600  # conversations this recently active are backfilled and have their usage read
COUNTERS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
TOTALS = (*COUNTERS, "request_count", "estimated_cost_usd")


def _totals(row: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(row.get(name) or 0) for name in TOTALS}


def _minus(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    return {name: a.get(name, 0.0) - b.get(name, 0.0) for name in TOTALS}


class BridgeSync:
    """Backfill and usage. Mixed into BridgeHost, next to BridgeEvents."""

    hooks: HookRunner
    conversations: OrderedDict[Conversation, ConversationState]
    agents_by_id: Mapping[str, Any]
    usage_enabled: bool
    usage_seen: dict[tuple[str, str], dict[str, float]]
    usage_rest: dict[str, dict[str, float]]
    usage_models: dict[str, str]
    started_at: str

    async def _request(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, params: Mapping[str, str] | None = None
    ) -> tuple[int, Any]:
        raise NotImplementedError

    async def _deliver(
        self,
        conversation: Conversation,
        state: ConversationState,
        text: str,
        blocks: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        raise NotImplementedError

    # -- history ------------------------------------------------------------------------------

    async def _history(self, conversation: Conversation, limit: int) -> list[dict[str, Any]] | None:
        params = {"agent_id": conversation.agent_id, "session_id": conversation.session_id, "limit": str(limit)}
        try:
            status, body = await self._request("GET", "/api/portal/history", params=params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not read Spacebot's history of %s: %s", conversation.session_id, reason(exc))
            return None
        if status != 200 or not isinstance(body, list):
            log.warning("/api/portal/history answered HTTP %d for %s", status, conversation.session_id)
            return None
        return [row for row in body if isinstance(row, dict) and "id" in row]

    async def _baseline(self, conversation: Conversation, state: ConversationState) -> None:
        """Before this process first sends into a conversation: what its history and usage
        already hold belongs to the past, not to Spacechat's turns."""
        if state.known_ids is not None:
            return
        rows = await self._history(conversation, BASELINE_LIMIT)
        if rows is None:
            return  # no baseline, no backfill (better a reply late than an old one shown again); next send retries
        state.known_ids = {str(row["id"]) for row in rows}
        if self.usage_enabled:
            state.usage_base = await self._conversation_usage(conversation)

    async def _backfill(self, conversation: Conversation, state: ConversationState) -> int:
        """Deliver the replies of this conversation that the stream lost; how many."""
        if state.known_ids is None:
            return 0
        rows = await self._history(conversation, HISTORY_LIMIT)
        missed = 0
        for row in rows or []:
            row_id = str(row["id"])
            if row_id in state.known_ids:
                continue
            state.known_ids.add(row_id)
            content = str(row.get("content") or "")
            if row.get("role") != "assistant" or take(state.delivered, content):
                continue
            if content.startswith("[ask] "):
                continue  # a question whose card never came: its text is not in the history
            missed += 1
            remember(state.backfilled, content)
            await self._deliver(conversation, state, content)
        return missed

    def _recent(self) -> list[tuple[Conversation, ConversationState]]:
        now = time.monotonic()
        return [
            (c, s)
            for c, s in self.conversations.items()
            if s.known_ids is not None and (s.turn is not None or now - max(s.sent_at, s.last_event) < RECENT_SECONDS)
        ]

    async def _backfill_all(self, why: str) -> None:
        missed = 0
        for conversation, state in self._recent():
            missed += await self._backfill(conversation, state)
        log.info("backfilled %d missed replies from Spacebot's history after %s", missed, why)

    # -- usage --------------------------------------------------------------------------------

    async def _conversation_usage(self, conversation: Conversation) -> dict[str, float] | None:
        path = f"/api/usage/conversation/{conversation.session_id}"
        try:
            status, body = await self._request("GET", path, params={"agent_id": conversation.agent_id})
        except (aiohttp.ClientError, TimeoutError):
            return None
        if status != 200 or not isinstance(body, dict):
            return None
        return _totals(body)

    async def _check_usage(self) -> None:
        """Spacebot's `/api/usage` merges models across agents, so it is asked per agent; the
        counters count from the bridge's start (`since`), and each increase is reported once."""
        for agent_id in self.agents_by_id:
            params = {"agent_id": agent_id, "group_by": "agent,model", "since": self.started_at}
            try:
                status, body = await self._request("GET", "/api/usage", params=params)
            except (aiohttp.ClientError, TimeoutError):
                return  # the health poll reports an unreachable Spacebot
            if status == 404:
                self.usage_enabled = False
                log.info("this Spacebot has no /api/usage: token usage will not be reported")
                return
            if status != 200 or not isinstance(body, dict):
                log.warning("/api/usage answered HTTP %d", status)
                return
            unpriced = (body.get("total") or {}).get("cost_status") == "unknown"
            await self._report_agent(agent_id, [r for r in body.get("by_model") or [] if isinstance(r, dict)], unpriced)

    async def _report_agent(self, agent_id: str, rows: list[dict[str, Any]], unpriced: bool) -> None:
        growth: dict[str, float] = {}
        total: dict[str, float] = dict.fromkeys(TOTALS, 0.0)
        for row in rows:
            model = str(row.get("model") or "unknown")
            now = _totals(row)
            before = self.usage_seen.get((agent_id, model), {})
            self.usage_seen[(agent_id, model)] = now
            growth[model] = (
                now["request_count"] - before.get("request_count", 0) + sum(now[c] - before.get(c, 0) for c in COUNTERS)
            )
            total = {name: total[name] + now[name] for name in TOTALS}
        if growth and max(growth.values()) > 0:
            self.usage_models[agent_id] = max(growth, key=lambda m: growth[m])
        model = self.usage_models.get(agent_id, PROVIDER)
        in_threads: dict[str, float] = dict.fromkeys(TOTALS, 0.0)
        for conversation, state in self._recent():
            if conversation.agent_id == agent_id:
                reported = await self._report_thread(conversation, state, model, unpriced)
                in_threads = {name: in_threads[name] + reported.get(name, 0.0) for name in TOTALS}
        # What the agent used outside Spacechat's threads, cumulative, never going back down (the
        # two routes are read a moment apart: a request may show in one before the other).
        before = self.usage_rest.get(agent_id, dict.fromkeys(TOTALS, 0.0))
        rest = {name: max(before[name], total[name] - in_threads[name]) for name in TOTALS}
        self.usage_rest[agent_id] = rest
        await self._report_usage(agent_id, None, model, _minus(rest, before), unpriced)

    async def _report_thread(
        self, conversation: Conversation, state: ConversationState, model: str, unpriced: bool
    ) -> dict[str, float]:
        """Report a thread's increase; return everything reported for it in this process."""
        now = await self._conversation_usage(conversation)
        if now is None:
            return state.usage_seen
        if state.usage_base is None:
            state.usage_base = now  # no baseline was taken: count from here
        since_base = {name: max(0.0, v) for name, v in _minus(now, state.usage_base).items()}
        delta = _minus(since_base, state.usage_seen)
        state.usage_seen = since_base
        await self._report_usage(conversation.agent_id, conversation, model, delta, unpriced)
        return since_base

    async def _report_usage(
        self, agent_id: str, conversation: Conversation | None, model: str, delta: Mapping[str, float], unpriced: bool
    ) -> None:
        counts = {name: max(0, int(delta.get(name, 0))) for name in COUNTERS}
        if not any(counts.values()) and delta.get("request_count", 0) <= 0:
            return
        cost = None if unpriced else round(max(0.0, delta.get("estimated_cost_usd", 0.0)), 8)
        place: dict[str, Any] = {"channel_id": None, "thread_id": None, "turn_id": None}
        if conversation is not None:
            last = self.conversations.get(conversation)
            place = {**conversation.place, "turn_id": last.last_turn_id if last else None}
            place.pop("agent_id")
        await self.hooks.call(
            "spacebot_llm_usage",
            agent_id=agent_id,
            **place,
            process_type="channel",
            model=model,
            provider=model.split("/", 1)[0] if "/" in model else PROVIDER,
            **counts,
            cost_usd=cost,
        )
