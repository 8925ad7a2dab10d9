-- The Postgres twin of migrations/0007_voice.sql (issue 17).
-- Voice memos (a person's recording, transcribed) and spoken replies (an agent's reply,
-- synthesized sentence by sentence). The audio lives in <data_dir>/voice/; the row holds what
-- the player and the agents need: duration, waveform peaks, status and the transcript.

CREATE TABLE voice_memos (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    thread_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    author_kind TEXT NOT NULL,
    author_id TEXT,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL DEFAULT 0,
    peaks TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    error TEXT,
    transcript TEXT,
    voice TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (kind IN ('memo', 'speech')),
    CHECK (status IN ('transcribing', 'transcribed', 'speaking', 'failed'))
);
CREATE INDEX voice_memos_by_message ON voice_memos (message_id);
CREATE INDEX voice_memos_open ON voice_memos (status) WHERE status IN ('transcribing', 'speaking');

-- The sentences of a spoken reply, each playable as soon as it is synthesized.
CREATE TABLE voice_clips (
    memo_id TEXT NOT NULL REFERENCES voice_memos(id),
    idx BIGINT NOT NULL,
    text TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (memo_id, idx)
);
