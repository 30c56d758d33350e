-- Jobs: long work, stored before the API answers so that a restart can resume or fail it.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    kind TEXT NOT NULL,
    -- waiting, working, done, error, cancelled.
    status TEXT NOT NULL,
    datasource_id TEXT NOT NULL DEFAULT '',
    datasource_name TEXT NOT NULL DEFAULT '',
    pipe_id TEXT NOT NULL DEFAULT '',
    pipe_name TEXT NOT NULL DEFAULT '',
    -- JSON object: what the job runs.
    spec TEXT NOT NULL DEFAULT '{}',
    -- JSON object: what it found and did (rows_affected, ...).
    result TEXT NOT NULL DEFAULT '{}',
    -- Hundredths of a percent, so it stays an integer on every database.
    progress BIGINT NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    -- The worker running it and when it last said so; a stale heartbeat means the worker died.
    worker TEXT NOT NULL DEFAULT '',
    heartbeat_at TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT NOT NULL DEFAULT '',
    finished_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_workspace ON jobs (workspace_id, created_at);
CREATE INDEX jobs_status ON jobs (status, created_at);

-- Cron schedules of copy and sink pipes. `last_tick_at` is the scheduled time last run: a
-- compare-and-set on it makes each tick run once however many schedulers look at it.
CREATE TABLE schedules (
    pipe_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    pipe_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    cron TEXT NOT NULL,
    -- running or paused.
    status TEXT NOT NULL,
    job_spec TEXT NOT NULL DEFAULT '{}',
    last_tick_at TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Environment variables read by templates (tb_secret, tb_var).
CREATE TABLE variables (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'secret',
    value TEXT NOT NULL,
    edited_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
