-- Observability and operations: LLM usage, turns, errors, health, budgets, incidents, and
-- operations awaiting a second operator.

CREATE TABLE usage_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    org_id TEXT NOT NULL,
    team_id TEXT,
    channel_id TEXT,
    thread_id TEXT,
    agent_id TEXT NOT NULL,
    turn_id TEXT,
    process_type TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd REAL
);
CREATE INDEX usage_by_org_time ON usage_records (org_id, ts);
CREATE INDEX usage_by_agent_time ON usage_records (agent_id, ts);
CREATE INDEX usage_by_thread ON usage_records (thread_id);
CREATE INDEX usage_by_channel_time ON usage_records (channel_id, ts);

CREATE TABLE turns (
    turn_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    channel_id TEXT,
    thread_id TEXT,
    message_id TEXT,
    model TEXT,
    provider TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    ttft_ms INTEGER,
    duration_ms INTEGER,
    outcome TEXT NOT NULL DEFAULT 'running',   -- running, completed, failed
    error TEXT
);
CREATE INDEX turns_by_agent_time ON turns (agent_id, started_at);
CREATE INDEX turns_by_thread ON turns (thread_id);

CREATE TABLE errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    org_id TEXT NOT NULL,
    agent_id TEXT,
    channel_id TEXT,
    thread_id TEXT,
    source TEXT NOT NULL,          -- turn, tool, worker, provider, connector
    message TEXT NOT NULL,
    hint TEXT
);
CREATE INDEX errors_by_org_time ON errors (org_id, ts);

CREATE TABLE health (
    component TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    detail TEXT,
    since TEXT NOT NULL
);

CREATE TABLE budget_alerts (
    scope_key TEXT NOT NULL,       -- org:<id> or agent:<id>
    period_start TEXT NOT NULL,
    kind TEXT NOT NULL,            -- warned, stopped
    at TEXT NOT NULL,
    PRIMARY KEY (scope_key, period_start, kind)
);

CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,            -- worker_failure, provider_outage, budget_stop, manual
    source TEXT,                   -- dedupe key while open (e.g. provider:local)
    title TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor')),
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    details TEXT NOT NULL DEFAULT '{}',
    channel_id TEXT,
    message_id TEXT,
    escalated_to TEXT,
    opened_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at TEXT,
    resolved_by TEXT,
    UNIQUE (org_id, number)
);
CREATE INDEX incidents_open_by_source ON incidents (org_id, source) WHERE status != 'resolved';

CREATE TABLE pending_ops (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'failed', 'done')),
    decided_by TEXT,
    decided_at TEXT,
    message_id TEXT,
    result TEXT
);
