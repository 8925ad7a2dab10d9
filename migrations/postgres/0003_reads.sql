-- The Postgres twin of migrations/0003_reads.sql (issue 17).
-- Read markers for unread counts, and the index that counts a channel's messages after one.

CREATE TABLE channel_reads (
    user_id TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    last_read_seq BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);

CREATE INDEX messages_by_channel ON messages (channel_id, seq);
