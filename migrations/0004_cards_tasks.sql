-- Cards and interactions, polls, tasks, and a small key-value store for hook plugins.

-- Live state of a message's card: poll tallies, bound tasks, decided approvals.
ALTER TABLE messages ADD COLUMN card_state TEXT;

CREATE TABLE interactions (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    message_id TEXT NOT NULL REFERENCES messages(id),
    block_id TEXT,
    action_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_name TEXT NOT NULL DEFAULT '',
    vals TEXT,
    connector TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX interactions_by_message ON interactions (message_id, created_at);

CREATE TABLE poll_votes (
    message_id TEXT NOT NULL REFERENCES messages(id),
    block_id TEXT NOT NULL,
    voter_id TEXT NOT NULL,
    voter_name TEXT NOT NULL,
    choice TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (message_id, block_id, voter_id)
);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    number INTEGER NOT NULL,
    team_id TEXT NOT NULL REFERENCES teams(id),
    channel_id TEXT REFERENCES channels(id),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('pending_approval', 'backlog', 'ready', 'in_progress', 'done', 'failed')),
    priority TEXT NOT NULL CHECK (priority IN ('critical', 'high', 'medium', 'low')),
    assignee_id TEXT,
    owner_agent_id TEXT,
    created_by TEXT,
    approved_by TEXT,
    approved_at TEXT,
    completed_at TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (org_id, number)
);
CREATE INDEX tasks_by_team ON tasks (team_id, status);

CREATE TABLE task_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id),
    kind TEXT NOT NULL,                   -- created, status, assigned, edited, comment
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    from_status TEXT,
    to_status TEXT,
    text TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX task_history_by_task ON task_history (task_id, id);

-- Messages whose card shows a task, so a task change updates them in place.
CREATE TABLE task_cards (
    task_id TEXT NOT NULL REFERENCES tasks(id),
    message_id TEXT NOT NULL REFERENCES messages(id),
    PRIMARY KEY (task_id, message_id)
);

CREATE TABLE plugin_state (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
);
