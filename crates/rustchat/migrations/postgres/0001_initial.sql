-- rustchat schema, PostgreSQL backend (spec CHAT-R13). Column-for-column equal to
-- migrations/sqlite/0001_initial.sql so one set of statements serves both backends;
-- server_config sections are JSONB (the runbook edits them with jsonb_set).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    display_name TEXT NOT NULL,
    nickname TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    position TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT 'member',
    is_bot BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    locale TEXT NOT NULL DEFAULT 'en',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE user_identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX idx_sessions_user ON sessions(user_id);

CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX idx_access_tokens_user ON access_tokens(user_id);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    open BOOLEAN NOT NULL DEFAULT FALSE,
    creator_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL DEFAULT 'member',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX idx_team_members_user ON team_members(user_id);

-- Direct (D) and group (G) channels have team_id '' (Mattermost's convention).
CREATE TABLE channels (
    id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    purpose TEXT NOT NULL DEFAULT '',
    header TEXT NOT NULL DEFAULT '',
    creator_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL DEFAULT 0,
    total_msg_count BIGINT NOT NULL DEFAULT 0,
    total_msg_count_root BIGINT NOT NULL DEFAULT 0,
    last_post_at BIGINT NOT NULL DEFAULT 0,
    last_root_post_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (team_id, name)
);

CREATE TABLE channel_members (
    channel_id TEXT NOT NULL REFERENCES channels(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL DEFAULT 'member',
    msg_count BIGINT NOT NULL DEFAULT 0,
    msg_count_root BIGINT NOT NULL DEFAULT 0,
    mention_count BIGINT NOT NULL DEFAULT 0,
    mention_count_root BIGINT NOT NULL DEFAULT 0,
    last_viewed_at BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX idx_channel_members_user ON channel_members(user_id);

CREATE TABLE posts (
    id TEXT PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    root_id TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT '',
    props TEXT NOT NULL DEFAULT '{}',
    file_ids TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    edited_at BIGINT NOT NULL DEFAULT 0,
    deleted_at BIGINT NOT NULL DEFAULT 0,
    reply_count BIGINT NOT NULL DEFAULT 0,
    last_reply_at BIGINT NOT NULL DEFAULT 0,
    client_msg_id TEXT,
    has_reactions BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX idx_posts_channel_created ON posts(channel_id, created_at DESC);
CREATE INDEX idx_posts_root_created ON posts(root_id, created_at);
CREATE UNIQUE INDEX idx_posts_user_client_msg ON posts(user_id, client_msg_id);

CREATE TABLE post_mentions (
    post_id TEXT NOT NULL REFERENCES posts(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE reactions (
    post_id TEXT NOT NULL REFERENCES posts(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    emoji_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id, emoji_name)
);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    post_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    mime_type TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX idx_files_unattached ON files(post_id, created_at);

CREATE TABLE incoming_webhooks (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    token_enc TEXT NOT NULL,
    team_id TEXT NOT NULL REFERENCES teams(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    creator_id TEXT NOT NULL REFERENCES users(id),
    display_name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE oauth_providers (
    name TEXT PRIMARY KEY,
    issuer_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret_enc TEXT NOT NULL,
    display_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    allowed_email_domains TEXT NOT NULL DEFAULT '',
    link_by_email BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE statuses (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    status TEXT NOT NULL,
    manual BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at BIGINT NOT NULL
);

CREATE TABLE server_config (
    id TEXT PRIMARY KEY,
    site JSONB NOT NULL DEFAULT '{}',
    authentication JSONB NOT NULL DEFAULT '{}',
    team JSONB NOT NULL DEFAULT '{}',
    integrations JSONB NOT NULL DEFAULT '{}',
    key_check TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);
INSERT INTO server_config (id, updated_at) VALUES ('default', 0);

-- Full-text search (CHAT-R17): a stored generated tsvector with a GIN index. The text search
-- configuration is fixed here ('english', the search.pg_language default); queries use the
-- same configuration so stems match.
ALTER TABLE posts ADD COLUMN message_tsv tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, message)) STORED;
CREATE INDEX idx_posts_message_tsv ON posts USING GIN (message_tsv);
