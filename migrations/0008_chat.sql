-- Chat essentials (issue 13): full-text search, edits and tombstones, reactions, mentions and
-- the inbox (who follows which thread, per-thread read markers), the thread list's last reply,
-- and direct conversations (channels of kind 'dm').

-- @handles: what `@name` in a message resolves to (unique in an organisation). Filled by the
-- store when a user is created, and at start-up for users created before this migration.
ALTER TABLE users ADD COLUMN handle TEXT;
CREATE UNIQUE INDEX users_by_handle ON users (org_id, handle) WHERE handle IS NOT NULL;

-- 'channel' or 'dm': a direct conversation is a private channel whose members are fixed.
ALTER TABLE channels ADD COLUMN kind TEXT NOT NULL DEFAULT 'channel';

-- Edits keep the earlier versions; a delete leaves a tombstone (text, files and card cleared).
ALTER TABLE messages ADD COLUMN edited_at TEXT;
ALTER TABLE messages ADD COLUMN deleted_at TEXT;
ALTER TABLE messages ADD COLUMN deleted_by TEXT;
-- The reactions summary, [{emoji, count, user_ids}], rewritten with each reaction.
ALTER TABLE messages ADD COLUMN reactions TEXT NOT NULL DEFAULT '[]';

CREATE TABLE message_edits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL REFERENCES messages(id),
    text TEXT NOT NULL,                  -- the version that was replaced
    created_at TEXT NOT NULL,            -- when that version was written
    replaced_at TEXT NOT NULL,
    replaced_by TEXT
);
CREATE INDEX message_edits_by_message ON message_edits (message_id, id);

CREATE TABLE message_reactions (
    message_id TEXT NOT NULL REFERENCES messages(id),
    emoji TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

CREATE TABLE message_mentions (
    message_id TEXT NOT NULL REFERENCES messages(id),
    user_id TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_mentions_by_user ON message_mentions (user_id);

-- The thread list shows the last reply and who replied lately, not only the root's author.
ALTER TABLE threads ADD COLUMN last_message_id TEXT;
ALTER TABLE threads ADD COLUMN last_author_kind TEXT;
ALTER TABLE threads ADD COLUMN last_author_id TEXT;
ALTER TABLE threads ADD COLUMN last_preview TEXT NOT NULL DEFAULT '';
ALTER TABLE threads ADD COLUMN repliers TEXT NOT NULL DEFAULT '[]';

UPDATE threads SET
    last_message_id = (SELECT m.id FROM messages m WHERE m.thread_id = threads.id ORDER BY m.seq DESC LIMIT 1),
    last_author_kind = (SELECT m.author_kind FROM messages m WHERE m.thread_id = threads.id ORDER BY m.seq DESC LIMIT 1),
    last_author_id = (SELECT m.author_id FROM messages m WHERE m.thread_id = threads.id ORDER BY m.seq DESC LIMIT 1),
    last_preview = COALESCE((SELECT substr(m.text, 1, 140) FROM messages m WHERE m.thread_id = threads.id
                             ORDER BY m.seq DESC LIMIT 1), '');

-- Who follows a thread (the inbox): they started it, replied in it, were mentioned in it, or are
-- in the direct conversation it belongs to.
CREATE TABLE thread_follows (
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads(id),
    started INTEGER NOT NULL DEFAULT 0,
    replied INTEGER NOT NULL DEFAULT 0,
    mentioned INTEGER NOT NULL DEFAULT 0,
    direct INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);
CREATE INDEX thread_follows_by_thread ON thread_follows (thread_id);

INSERT OR IGNORE INTO thread_follows (user_id, thread_id, started, created_at)
    SELECT created_by_id, id, 1, created_at FROM threads WHERE created_by_id IS NOT NULL;
INSERT INTO thread_follows (user_id, thread_id, replied, created_at)
    SELECT DISTINCT m.author_id, m.thread_id, 1, MIN(m.created_at) FROM messages m
    JOIN threads t ON t.id = m.thread_id
    WHERE m.author_id IS NOT NULL AND m.id != t.root_message_id
    GROUP BY m.author_id, m.thread_id
    ON CONFLICT (user_id, thread_id) DO UPDATE SET replied = 1;

-- Per-thread read markers (the inbox's unread counts), beside the per-channel ones.
CREATE TABLE thread_reads (
    user_id TEXT NOT NULL,
    thread_id TEXT NOT NULL REFERENCES threads(id),
    last_read_seq INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);

-- Full-text search over messages (FTS5, external content: the text lives once, in messages).
-- Only finished, undeleted messages are indexed; the triggers keep the index in the same
-- transaction as the message, whichever statement changes it.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text,
    content = 'messages',
    content_rowid = 'seq',
    -- No prefix indexes: each would add an entry per token to every send's indexing; a `word*`
    -- query scans the term range instead, which is fast enough for a chat's vocabulary.
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.state = 'completed' AND new.deleted_at IS NULL AND new.text != ''
BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
END;

-- One trigger for both halves of an update, so the old entry always goes before the new one.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text, state, deleted_at ON messages
WHEN old.text IS NOT new.text OR old.state IS NOT new.state OR old.deleted_at IS NOT new.deleted_at
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text)
        SELECT 'delete', old.seq, old.text
        WHERE old.state = 'completed' AND old.deleted_at IS NULL AND old.text != '';
    INSERT INTO messages_fts (rowid, text)
        SELECT new.seq, new.text
        WHERE new.state = 'completed' AND new.deleted_at IS NULL AND new.text != '';
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.state = 'completed' AND old.deleted_at IS NULL AND old.text != ''
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
END;

INSERT INTO messages_fts (rowid, text)
    SELECT seq, text FROM messages WHERE state = 'completed' AND text != '';
