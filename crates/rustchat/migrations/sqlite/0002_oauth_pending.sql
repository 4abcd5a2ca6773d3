-- CHAT-R22: OIDC login states and one-time exchange codes when Redis is absent or down.
-- Rows are short-lived (300 s / 60 s), consumed with DELETE ... RETURNING and swept when
-- expired; with Redis healthy they live under rustchat:oauth:* keys instead.
CREATE TABLE oauth_pending (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX idx_oauth_pending_expires ON oauth_pending(expires_at);
