CREATE TABLE pipes (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- Id of the published node; empty when nothing is published.
    endpoint_node_id TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    pipe_id TEXT NOT NULL REFERENCES pipes (id),
    position BIGINT NOT NULL,
    name TEXT NOT NULL,
    sql_text TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    node_type TEXT NOT NULL DEFAULT '',
    -- JSON object of type-specific settings.
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (pipe_id, name)
);
CREATE INDEX nodes_pipe ON nodes (pipe_id, position);
