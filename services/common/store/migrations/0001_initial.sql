-- Portable SQL: the same migrations run on SQLite (local) and PostgreSQL (distributed).
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    created_at TEXT NOT NULL
);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    owner_user_id TEXT NOT NULL REFERENCES users (id),
    database_name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    -- NULL for a user token, which belongs to a user rather than a workspace.
    workspace_id TEXT REFERENCES workspaces (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_value TEXT NOT NULL UNIQUE,
    -- JSON array of Tinybird scope strings.
    scopes TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX tokens_workspace_name ON tokens (workspace_id, name);

CREATE TABLE data_sources (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    name TEXT NOT NULL,
    -- JSON array of columns {name, type, jsonpath, default_value, codec}.
    columns TEXT NOT NULL,
    -- JSON object of engine settings.
    engine TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    origin_format TEXT NOT NULL DEFAULT '',
    table_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
