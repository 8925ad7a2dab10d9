-- The foundation: tenancy (organisations > teams > channels > threads), messages, the
-- append-only event log, idempotency keys and attachments.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT NOT NULL REFERENCES teams(id),
    name TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT 'departments',
    private INTEGER NOT NULL DEFAULT 0,
    archived INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    UNIQUE (org_id, name)
);

CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT NOT NULL REFERENCES teams(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    root_message_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    reply_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by_kind TEXT NOT NULL,
    created_by_id TEXT,
    last_message_at TEXT NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE INDEX threads_by_channel ON threads (channel_id, last_seq);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    -- seq of the message.created event: the order of messages in a thread and the history cursor
    seq INTEGER NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT NOT NULL REFERENCES teams(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    thread_id TEXT NOT NULL REFERENCES threads(id),
    author_kind TEXT NOT NULL,
    author_id TEXT,
    text TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT 'markdown',
    state TEXT NOT NULL,
    failure_reason TEXT,
    error TEXT,
    attachments TEXT NOT NULL DEFAULT '[]',
    blocks TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    client_msg_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (state IN ('created', 'streaming', 'completed', 'failed'))
);
CREATE INDEX messages_by_thread ON messages (thread_id, seq);
CREATE INDEX messages_streaming ON messages (state) WHERE state = 'streaming';

-- The append-only log. `body` is the event's envelope as sent to clients, made once.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    org_id TEXT,
    team_id TEXT,
    channel_id TEXT,
    thread_id TEXT,
    ts TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_by_ts ON events (ts);

CREATE TABLE idempotency_keys (
    actor_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (actor_id, key)
);
CREATE INDEX idempotency_by_age ON idempotency_keys (created_at);

CREATE TABLE attachments (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    uploader_kind TEXT NOT NULL,
    uploader_id TEXT,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    message_id TEXT REFERENCES messages(id),
    created_at TEXT NOT NULL
);

-- API tokens: stored hashed, shown once. The first start creates an admin token.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT
);
