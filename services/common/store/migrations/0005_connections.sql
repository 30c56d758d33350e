-- Connections: the credentials a sink pipe writes with (an S3-compatible bucket, a local
-- directory). `settings` is shown to callers; `secrets` only to the jobs that write.
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    -- s3 or local.
    service TEXT NOT NULL,
    -- JSON object: region, endpoint, root, ...
    settings TEXT NOT NULL DEFAULT '{}',
    -- JSON object: access key id, secret access key.
    secrets TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
