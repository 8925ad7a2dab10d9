"""Usage, turns, errors and health: what observability reads.

Every LLM request is one `usage_records` row, written with its `agent.token.usage` event; totals
per thread, channel, agent, team and organisation over any window are sums over indexed rows
(SQLite sums a month of a small organisation's requests in milliseconds). Turns record time to
first token and duration; errors keep the last failures with a hint of what to do.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from statistics import quantiles
from typing import Any

from ..events import now_rfc3339
from .db import Database, WriteTx

COUNTERS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
GROUPS = {
    "agent": "agent_id",
    "model": "model",
    "provider": "provider",
    "channel": "channel_id",
    "team": "team_id",
    "thread": "thread_id",
    "user": "user_id",
    "day": "substr(ts, 1, 10)",
    "hour": "substr(ts, 1, 13)",
}
WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "30d": timedelta(days=30)}

# What to do about an error, by what it says (first match wins).
HINTS: tuple[tuple[str, str], ...] = (
    (r"HTTP 401|HTTP 403|unauthori[sz]ed|invalid api key", "Check the provider's API key (providers.<name>.api_key)."),
    (r"HTTP 429|rate limit", "The provider is rate limiting: wait, lower the load, or raise the plan's limits."),
    (r"HTTP 5\d\d|overloaded|unavailable", "The provider is failing on its side: retry later, or reconnect it."),
    (r"could not reach|connect|refused|ClientConnector", "The provider cannot be reached: is its base_url up?"),
    (r"timed out|timeout", "The call timed out: retry, or raise the tool's or provider's timeout."),
    (r"budget", "The budget is spent: raise the limit, or wait for the next period."),
    (r"Tool denied|permission", "A person declined the action; ask again or change the request."),
    (r"cancelled|interrupted", "The work was stopped: retry the turn."),
)


def hint_for(message: str) -> str | None:
    for pattern, hint in HINTS:
        if re.search(pattern, message, re.IGNORECASE):
            return hint
    return None


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def record(tx: WriteTx, row: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO usage_records (ts, org_id, team_id, channel_id, thread_id, agent_id, user_id, turn_id,"
        " process_type, model, provider, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,"
        " reasoning_tokens, cost_usd)"
        " VALUES (:ts, :org_id, :team_id, :channel_id, :thread_id, :agent_id, :user_id, :turn_id, :process_type,"
        " :model, :provider, :input_tokens, :output_tokens, :cache_read_tokens, :cache_write_tokens,"
        " :reasoning_tokens, :cost_usd)",
        {"user_id": None, **row},
    )


def turn_started(tx: WriteTx, row: dict[str, Any]) -> None:
    tx.execute(
        "INSERT OR REPLACE INTO turns (turn_id, org_id, agent_id, channel_id, thread_id, message_id, model, provider,"
        " started_at, outcome) VALUES (:turn_id, :org_id, :agent_id, :channel_id, :thread_id, :message_id, :model,"
        " :provider, :started_at, 'running')",
        row,
    )


def turn_ended(
    tx: WriteTx, turn_id: str, *, outcome: str, ttft_ms: int | None, duration_ms: int, error: str | None, at: str
) -> None:
    tx.execute(
        "UPDATE turns SET outcome = ?, ttft_ms = ?, duration_ms = ?, error = ?, ended_at = ? WHERE turn_id = ?",
        (outcome, ttft_ms, duration_ms, error, at, turn_id),
    )


def error(
    tx: WriteTx,
    *,
    org_id: str,
    source: str,
    message: str,
    agent_id: str | None = None,
    channel_id: str | None = None,
    thread_id: str | None = None,
    at: str,
) -> None:
    tx.execute(
        "INSERT INTO errors (ts, org_id, agent_id, channel_id, thread_id, source, message, hint)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, org_id, agent_id, channel_id, thread_id, source, message[:1000], hint_for(message)),
    )


def set_health(tx: WriteTx, component: str, status: str, detail: str | None, at: str) -> bool:
    """Record a component's health; True when it changed."""
    row = tx.one("SELECT status, detail FROM health WHERE component = ?", (component,))
    if row is not None and row["status"] == status and row["detail"] == detail:
        return False
    since = (
        at
        if row is None or row["status"] != status
        else tx.one("SELECT since FROM health WHERE component = ?", (component,))[0]
    )
    tx.execute(
        "INSERT OR REPLACE INTO health (component, status, detail, since) VALUES (?, ?, ?, ?)",
        (component, status, detail, since),
    )
    return True


# --- reads ---------------------------------------------------------------------------------


def empty() -> dict[str, Any]:
    return {**{name: 0 for name in COUNTERS}, "requests": 0, "cost_usd": 0.0, "unpriced_requests": 0}


def _row_totals(row: Any) -> dict[str, Any]:
    """Sums of a group. `cost_usd` is the cost of the priced requests, and None when every
    request was unpriced: an unknown cost is never shown as $0 (`unpriced_requests` says how
    many are not in it)."""
    requests, unpriced = int(row["requests"] or 0), int(row["unpriced"] or 0)
    return {
        **{name: int(row[name] or 0) for name in COUNTERS},
        "requests": requests,
        "cost_usd": None if requests and unpriced == requests else round(float(row["cost_usd"] or 0), 8),
        "unpriced_requests": unpriced,
    }


_SUMS = ", ".join(f"SUM({name}) AS {name}" for name in COUNTERS) + (
    ", COUNT(*) AS requests, SUM(cost_usd) AS cost_usd, SUM(cost_usd IS NULL) AS unpriced"
)


async def totals(db: Database, where: str, params: dict[str, Any]) -> dict[str, Any]:
    row = await db.fetchone(f"SELECT {_SUMS} FROM usage_records WHERE {where}", params)
    return _row_totals(row) if row is not None and row["requests"] else empty()


async def windows(db: Database, where: str, params: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Totals over the last hour, day and 30 days."""
    now = now or datetime.now(UTC)
    out = {}
    for name, span in WINDOWS.items():
        out[name] = await totals(db, f"{where} AND ts >= :since", {**params, "since": ts(now - span)})
    return out


async def grouped(
    db: Database, *, org_id: str, group_by: list[str], since: str, until: str, filters: dict[str, str]
) -> list[dict[str, Any]]:
    # Quoted aliases, grouped by their expressions: `user` is a keyword in Postgres (GROUP BY
    # user would group by the session's role), and both dialects take this form.
    columns = [f'{GROUPS[name]} AS "{name}"' for name in group_by]
    where = ["org_id = :org_id", "ts >= :since", "ts < :until"]
    params: dict[str, Any] = {"org_id": org_id, "since": since, "until": until}
    for name, value in filters.items():
        where.append(f"{GROUPS[name]} = :f_{name}")
        params[f"f_{name}"] = value
    expressions = ", ".join(GROUPS[name] for name in group_by)
    group = f" GROUP BY {expressions} ORDER BY {expressions}" if group_by else ""
    select = ", ".join([*columns, _SUMS]) if columns else _SUMS
    rows = await db.fetchall(f"SELECT {select} FROM usage_records WHERE {' AND '.join(where)}{group}", params)
    return [{**{name: row[name] for name in group_by}, **_row_totals(row)} for row in rows if row["requests"]]


def percentiles(values: list[int]) -> dict[str, int | None]:
    if not values:
        return {"p50": None, "p95": None, "count": 0}
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "count": 1}
    cuts = quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49]), "p95": round(cuts[94]), "count": len(values)}


async def latency(db: Database, where: str, params: dict[str, Any], since: str) -> dict[str, Any]:
    rows = await db.fetchall(
        f"SELECT ttft_ms, duration_ms, outcome FROM turns WHERE {where} AND started_at >= :since"
        " AND outcome != 'running'",
        {**params, "since": since},
    )
    return {
        "ttft_ms": percentiles([r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]),
        "turn_ms": percentiles([r["duration_ms"] for r in rows if r["duration_ms"] is not None]),
        "turns": len(rows),
        "failed": sum(1 for r in rows if r["outcome"] == "failed"),
    }


async def recent_errors(db: Database, where: str, params: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    rows = await db.fetchall(
        f"SELECT ts, agent_id, channel_id, thread_id, source, message, hint FROM errors WHERE {where}"
        " ORDER BY id DESC LIMIT :limit",
        {**params, "limit": limit},
    )
    return [dict(row) for row in rows]


async def health(db: Database) -> list[dict[str, Any]]:
    return [dict(row) for row in await db.fetchall("SELECT * FROM health ORDER BY component")]


SPENT_BY = {"agent": "agent_id", "org": "org_id", "team": "team_id", "person": "user_id"}


async def spent_since(db: Database, *, by: str, key: str, since: str) -> tuple[float, int]:
    """Cost recorded since `since` for one agent, organisation, team or person (`by`), and how
    many requests of that time had no price (they are not in the cost, never counted as $0)."""
    row = await db.fetchone(
        f"SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) - COUNT(cost_usd) FROM usage_records"
        f" WHERE {SPENT_BY[by]} = ? AND ts >= ?",
        (key, since),
    )
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


def first_alert(tx: WriteTx, scope_key: str, period: str, kind: str) -> bool:
    """Record a budget alert; False when it was already made this period."""
    inserted = tx.execute(
        "INSERT OR IGNORE INTO budget_alerts (scope_key, period_start, kind, at) VALUES (?, ?, ?, ?)",
        (scope_key, period, kind, now_rfc3339()),
    ).rowcount
    return bool(inserted)


async def last_model(db: Database, thread_id: str) -> Any:
    """`(model, provider, agent_id)` of a thread's latest turn, or None."""
    return await db.fetchone(
        "SELECT model, provider, agent_id FROM turns WHERE thread_id = ? ORDER BY started_at DESC LIMIT 1", (thread_id,)
    )


async def metric_rows(db: Database, org_id: str | None) -> dict[str, list[Any]]:
    """The counts `/metrics` exposes, by family, each row led by its organisation's id: one
    organisation's rows, or every organisation's when `org_id` is None (the instance's view)."""
    where, params = ("org_id = ?", (org_id,)) if org_id is not None else ("1 = 1", ())
    sums = ", ".join(f"SUM({name})" for name in COUNTERS)
    return {
        "messages": await db.fetchall(
            f"SELECT org_id, author_kind, state, COUNT(*) FROM messages WHERE {where}"
            " GROUP BY org_id, author_kind, state",
            params,
        ),
        "usage": await db.fetchall(
            # The priced requests' cost (NULL when none was priced) and the unpriced ones apart:
            # an unknown cost is never exported as $0.
            f"SELECT org_id, agent_id, model, {sums}, COUNT(*), SUM(cost_usd), SUM(cost_usd IS NULL)"
            f" FROM usage_records WHERE {where} GROUP BY org_id, agent_id, model",
            params,
        ),
        "turns": await db.fetchall(
            f"SELECT org_id, agent_id, outcome, COUNT(*) FROM turns WHERE {where}"
            " AND outcome != 'running' GROUP BY org_id, agent_id, outcome",
            params,
        ),
        "incidents": await db.fetchall(
            f"SELECT org_id, status, COUNT(*) FROM incidents WHERE {where} GROUP BY org_id, status", params
        ),
    }
