-- The Postgres twin of migrations/0001_initial.sql (issue 17). The store writes its SQL in
-- SQLite's spelling (store/dialect.py rewrites the rest); these functions give Postgres the two
-- SQLite functions that spelling uses, with SQLite's meaning.

-- strftime('%Y-%m-%dT%H:%M:%fZ'[, 'now']): the current UTC time in RFC 3339 with milliseconds,
-- the only form the store asks for.
CREATE FUNCTION strftime(format TEXT, moment TEXT DEFAULT 'now') RETURNS TEXT
LANGUAGE sql VOLATILE AS $$
    SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- json_extract(document, '$.a.b'): the value at a path of a JSON text column, as text.
CREATE FUNCTION json_extract(document TEXT, path TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CAST(document AS jsonb) #>> string_to_array(substr(path, 3), '.')
$$;

-- The log's seq counter: one row, read and written under the log's advisory lock at every
-- batch (store/postgres.py), so seqs are assigned in commit order across every process.
CREATE TABLE log_seq (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_seq BIGINT NOT NULL
);
INSERT INTO log_seq (last_seq) VALUES (0);
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
    private BIGINT NOT NULL DEFAULT 0,
    archived BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT,
    last_seq BIGINT NOT NULL DEFAULT 0,
    UNIQUE (org_id, name)
);

CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT NOT NULL REFERENCES teams(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    root_message_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    reply_count BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by_kind TEXT NOT NULL,
    created_by_id TEXT,
    last_message_at TEXT NOT NULL,
    last_seq BIGINT NOT NULL
);
CREATE INDEX threads_by_channel ON threads (channel_id, last_seq);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    -- seq of the message.created event: the order of messages in a thread and the history cursor
    seq BIGINT NOT NULL UNIQUE,
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
    seq BIGINT PRIMARY KEY,
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
    status BIGINT NOT NULL,
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
    size BIGINT NOT NULL,
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
