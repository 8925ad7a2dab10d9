-- The Postgres twin of migrations/0010_hosts.sql (issue 17).
-- Tasks that another system owns and Spacechat mirrors (issue 14): a running Spacebot's tasks,
-- keyed by their source and the source's own task number. The source stays the truth for their
-- status; Spacechat's actions on them go to it through the host (HostAPI.task_action).
ALTER TABLE tasks ADD COLUMN source TEXT;             -- NULL: Spacechat's own task; 'spacebot'
ALTER TABLE tasks ADD COLUMN source_number BIGINT;   -- the task's number in its source
ALTER TABLE tasks ADD COLUMN source_revision BIGINT; -- the source's last revision seen
ALTER TABLE tasks ADD COLUMN deleted_at TEXT;         -- deleted in its source: off the board, history kept
CREATE UNIQUE INDEX tasks_by_source ON tasks (org_id, source, source_number) WHERE source IS NOT NULL;
