-- rustchat schema, SQLite backend (spec CHAT-R13). Kept column-for-column equal to
-- migrations/postgres/0001_initial.sql so one set of statements serves both backends;
-- booleans are INTEGER 0/1 here, JSON documents are TEXT.

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
    is_bot INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    locale TEXT NOT NULL DEFAULT 'en',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE user_identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
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
    created_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_access_tokens_user ON access_tokens(user_id);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 0,
    creator_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL DEFAULT 'member',
    created_at INTEGER NOT NULL,
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
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL DEFAULT 0,
    total_msg_count INTEGER NOT NULL DEFAULT 0,
    total_msg_count_root INTEGER NOT NULL DEFAULT 0,
    last_post_at INTEGER NOT NULL DEFAULT 0,
    last_root_post_at INTEGER NOT NULL DEFAULT 0,
    UNIQUE (team_id, name)
);

CREATE TABLE channel_members (
    channel_id TEXT NOT NULL REFERENCES channels(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL DEFAULT 'member',
    msg_count INTEGER NOT NULL DEFAULT 0,
    msg_count_root INTEGER NOT NULL DEFAULT 0,
    mention_count INTEGER NOT NULL DEFAULT 0,
    mention_count_root INTEGER NOT NULL DEFAULT 0,
    last_viewed_at INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX idx_channel_members_user ON channel_members(user_id);

-- seq is the rowid (monotonic), which the FTS5 external-content table keys on.
CREATE TABLE posts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    root_id TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT '',
    props TEXT NOT NULL DEFAULT '{}',
    file_ids TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    edited_at INTEGER NOT NULL DEFAULT 0,
    deleted_at INTEGER NOT NULL DEFAULT 0,
    reply_count INTEGER NOT NULL DEFAULT 0,
    last_reply_at INTEGER NOT NULL DEFAULT 0,
    client_msg_id TEXT,
    has_reactions INTEGER NOT NULL DEFAULT 0
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
    created_at INTEGER NOT NULL,
    PRIMARY KEY (post_id, user_id, emoji_name)
);

CREATE TABLE files (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    channel_id TEXT NOT NULL REFERENCES channels(id),
    post_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mime_type TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL
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
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE oauth_providers (
    name TEXT PRIMARY KEY,
    issuer_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret_enc TEXT NOT NULL,
    display_name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    allowed_email_domains TEXT NOT NULL DEFAULT '',
    link_by_email INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE statuses (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    status TEXT NOT NULL,
    manual INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE server_config (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL DEFAULT '{}',
    authentication TEXT NOT NULL DEFAULT '{}',
    team TEXT NOT NULL DEFAULT '{}',
    integrations TEXT NOT NULL DEFAULT '{}',
    key_check TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
INSERT INTO server_config (id, updated_at) VALUES ('default', 0);

-- Full-text search (CHAT-R17): external content over posts.message, kept in step by triggers.
CREATE VIRTUAL TABLE posts_fts USING fts5(
    message,
    content = 'posts',
    content_rowid = 'seq',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER posts_fts_insert AFTER INSERT ON posts BEGIN
    INSERT INTO posts_fts(rowid, message) VALUES (new.seq, new.message);
END;
CREATE TRIGGER posts_fts_delete AFTER DELETE ON posts BEGIN
    INSERT INTO posts_fts(posts_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
CREATE TRIGGER posts_fts_update AFTER UPDATE OF message ON posts BEGIN
    INSERT INTO posts_fts(posts_fts, rowid, message) VALUES ('delete', old.seq, old.message);
    INSERT INTO posts_fts(rowid, message) VALUES (new.seq, new.message);
END;
