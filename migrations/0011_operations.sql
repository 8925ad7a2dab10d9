-- Agent operations, deeper (#15): approval policies and the pending-approvals inbox, incidents
-- with severities, statuses, roles, updates and a timeline, usage per person, and an index
-- that serves a thread's provenance timeline from the log.

-- Approval policies set through the API (config policies sit under them). agent_id and tool
-- may be '*'.
CREATE TABLE approval_policies (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    agent_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    policy TEXT NOT NULL CHECK (policy IN ('always', 'once_per_thread', 'auto', 'never')),
    risk TEXT NOT NULL CHECK (risk IN ('low', 'medium', 'high', 'critical')),
    updated_by TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (org_id, agent_id, tool)
);

-- Rules people made by deciding: "approve for this thread" (thread_id set, allow) and "deny and
-- remember" (thread_id NULL, deny).
CREATE TABLE approval_rules (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    agent_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    thread_id TEXT,
    decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
    approval_id TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX approval_rules_lookup ON approval_rules (org_id, tool, agent_id) WHERE revoked_at IS NULL;

-- Every approval asked, pending or decided.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    agent_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    turn_id TEXT,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '{}',
    policy TEXT NOT NULL,
    risk TEXT NOT NULL,
    message_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'timed_out')),
    requested_at TEXT NOT NULL,
    escalated_at TEXT,
    escalated_to TEXT,
    decision TEXT,
    decided_by TEXT,
    decided_at TEXT,
    rule TEXT
);
CREATE INDEX approvals_pending ON approvals (org_id, requested_at) WHERE status = 'pending';
CREATE INDEX approvals_by_thread ON approvals (thread_id);

-- Incidents as incident.io runs them: severities sev1-sev4 (configurable, so no CHECK), statuses
-- triage -> investigating -> mitigated -> resolved -> closed, each with its time. The table is
-- rebuilt (SQLite cannot change a CHECK): open becomes triage, acknowledged investigating;
-- critical, major, minor become sev1, sev2, sev3.
CREATE TABLE incidents_v2 (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    source TEXT,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('triage', 'investigating', 'mitigated', 'resolved', 'closed')),
    details TEXT NOT NULL DEFAULT '{}',
    channel_id TEXT,
    message_id TEXT,
    escalated_to TEXT,
    opened_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    mitigated_at TEXT,
    resolved_at TEXT,
    resolved_by TEXT,
    closed_at TEXT,
    opened_from TEXT,
    last_update_at TEXT,
    reminded_at TEXT,
    retrospective TEXT,
    UNIQUE (org_id, number)
);
INSERT INTO incidents_v2 (id, org_id, number, kind, source, title, severity, status, details, channel_id,
    message_id, escalated_to, opened_at, acknowledged_at, acknowledged_by, resolved_at, resolved_by)
SELECT id, org_id, number, kind, source, title,
    CASE severity WHEN 'critical' THEN 'sev1' WHEN 'major' THEN 'sev2' ELSE 'sev3' END,
    CASE status WHEN 'open' THEN 'triage' WHEN 'acknowledged' THEN 'investigating' ELSE 'resolved' END,
    details, channel_id, message_id, escalated_to, opened_at, acknowledged_at, acknowledged_by, resolved_at,
    resolved_by
FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_v2 RENAME TO incidents;
CREATE INDEX incidents_open_by_source ON incidents (org_id, source) WHERE status NOT IN ('resolved', 'closed');

CREATE TABLE incident_roles (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    role TEXT NOT NULL,
    user_id TEXT NOT NULL,
    assigned_by TEXT,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, role)
);

-- The incident's own timeline: what happened to it (kept with the incident, not subject to the
-- event log's retention), status updates, and pinned messages.
CREATE TABLE incident_timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    text TEXT NOT NULL,
    message_id TEXT,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, id);

-- Usage per person: the author of the message that started the turn.
ALTER TABLE usage_records ADD COLUMN user_id TEXT;
CREATE INDEX usage_by_user_time ON usage_records (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX usage_by_team_time ON usage_records (team_id, ts);

-- A thread's provenance timeline reads its events in order.
CREATE INDEX events_by_thread ON events (thread_id, seq) WHERE thread_id IS NOT NULL;
