-- The Postgres twin of migrations/0009_notifications.sql (issue 17).
-- Notifications and profiles (issue 13).

-- Each person's notification level per channel: `all` (every message), `mentions` (mentions,
-- direct messages and replies in threads the person started or replied to: the default, kept as
-- no row) or `muted` (nothing). Read at start-up into memory; written when a person changes it.
CREATE TABLE notification_levels (
    user_id TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    level TEXT NOT NULL CHECK (level IN ('all', 'mentions', 'muted')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);

-- A person's picture: an uploaded image attachment, served at /v1/users/{id}/avatar.
ALTER TABLE users ADD COLUMN avatar_attachment_id TEXT REFERENCES attachments(id);
