-- Memory under policy and consent (issue 12): policies per organisation, team and channel,
-- each person's consent, the candidate queue people review, memories as first-class records
-- with revisions, validity and tombstones, and the map from vectors to what they embed.
-- The vectors themselves live in a sqlite-vec `vec0` table that the store creates when the
-- extension loads (store/vectors.py), so a SQLite that cannot load it still migrates.

-- One row per level that sets something; `settings` holds only the keys set at that level
-- (the nearest level that sets a key wins, then the defaults).
CREATE TABLE memory_policies (
    scope_type TEXT NOT NULL CHECK (scope_type IN ('org', 'team', 'channel')),
    scope_id TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    settings TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (scope_type, scope_id)
);

CREATE TABLE memory_consent (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    org_id TEXT NOT NULL REFERENCES orgs(id),
    consent TEXT NOT NULL CHECK (consent IN ('in', 'out')),
    updated_at TEXT NOT NULL
);

CREATE TABLE memory_candidates (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT,
    channel_id TEXT,
    thread_id TEXT,
    agent_id TEXT,
    source TEXT NOT NULL CHECK (source IN ('agent', 'message', 'interaction', 'task')),
    source_ref TEXT,
    source_message_id TEXT,
    source_user_id TEXT,
    subject_id TEXT,
    content TEXT NOT NULL,
    memory_type TEXT NOT NULL CHECK (memory_type IN
        ('fact', 'preference', 'decision', 'identity', 'event', 'observation', 'goal', 'todo')),
    importance REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'merged', 'withdrawn')),
    group_id TEXT,
    original_content TEXT,
    diff TEXT,
    reason TEXT,
    memory_id TEXT,
    decided_by TEXT,
    decided_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX memory_candidates_queue ON memory_candidates (org_id, status, created_at);
CREATE INDEX memory_candidates_by_person ON memory_candidates (source_user_id, status);
CREATE INDEX memory_candidates_by_subject ON memory_candidates (subject_id, status);
CREATE INDEX memory_candidates_by_ref ON memory_candidates (source, source_ref);

CREATE TABLE memories (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT,
    channel_id TEXT,
    agent_id TEXT,
    subject_id TEXT,
    source_user_id TEXT,
    candidate_id TEXT,
    -- where it came from: a candidate's source and reference (a thread for a thread summary)
    source TEXT,
    source_ref TEXT,
    content TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    importance REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    -- valid, invalid (superseded by a newer one, kept as Zep keeps it), deleted (a tombstone)
    status TEXT NOT NULL CHECK (status IN ('valid', 'invalid', 'deleted')),
    valid_from TEXT NOT NULL,
    valid_until TEXT,
    superseded_by TEXT,
    revision INTEGER NOT NULL,
    -- what the agent's own store holds: pending until the host took it
    delivery TEXT NOT NULL CHECK (delivery IN ('pending', 'delivered', 'failed', 'none')),
    delivery_error TEXT,
    host_memory_id TEXT,
    delivered_revision INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    deleted_by TEXT
);
CREATE INDEX memories_by_org ON memories (org_id, status, updated_at);
CREATE INDEX memories_by_subject ON memories (subject_id);
CREATE INDEX memories_by_source ON memories (source_user_id);
CREATE INDEX memories_undelivered ON memories (delivery) WHERE delivery IN ('pending', 'failed');

CREATE TABLE memory_revisions (
    memory_id TEXT NOT NULL REFERENCES memories(id),
    revision INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN
        ('created', 'edited', 'merged', 'rolled_back', 'invalidated', 'restored', 'deleted')),
    content TEXT NOT NULL,
    memory_type TEXT NOT NULL,
    importance REAL NOT NULL,
    status TEXT NOT NULL,
    diff TEXT,
    note TEXT,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (memory_id, revision)
);

-- What each vector embeds: a message, a memory or a pending candidate. `item_id` is the
-- vec0 row id.
CREATE TABLE vector_refs (
    item_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'memory', 'candidate')),
    ref_id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    channel_id TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX vector_refs_by_channel ON vector_refs (channel_id);

-- Full-text indexes for hybrid search's keyword side (FTS5, kept by triggers). Only completed
-- messages are indexed, so a streaming reply's checkpoints (every 250 ms) touch no index; the
-- index always holds exactly the completed messages' current text.
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='rowid');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.state = 'completed' BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.state = 'completed' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER messages_fts_unindex AFTER UPDATE OF text, state ON messages WHEN old.state = 'completed' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER messages_fts_index AFTER UPDATE OF text, state ON messages WHEN new.state = 'completed' BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text);
END;
INSERT INTO messages_fts(rowid, text) SELECT rowid, text FROM messages WHERE state = 'completed';

CREATE VIRTUAL TABLE memories_fts USING fts5(content, content='memories', content_rowid='rowid');
CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, content) VALUES (new.rowid, new.content);
END;
CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO memories_fts(rowid, content) VALUES (new.rowid, new.content);
END;
