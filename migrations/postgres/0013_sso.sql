-- The Postgres twin of migrations/0013_sso.sql (issue 17).
-- Single sign-on with OpenID Connect, per organisation (issue 17, point 5). Plain SQL that
-- Postgres takes as well: TEXT times in the log's own RFC 3339 form, JSON as TEXT.

-- One provider per organisation. The client secret is kept to exchange codes at the provider's
-- token endpoint; the API never returns it and nothing logs it.
CREATE TABLE sso_providers (
    org_id TEXT PRIMARY KEY REFERENCES orgs(id),
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    allowed_domains TEXT NOT NULL DEFAULT '[]',  -- JSON list of e-mail domains; empty: any
    role_claim TEXT NOT NULL DEFAULT 'groups',
    role_mapping TEXT NOT NULL DEFAULT '[]',     -- JSON list of {"value", "role"}, first match wins
    default_role TEXT NOT NULL CHECK (default_role IN ('admin', 'operator', 'member', 'guest')),
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL,
    updated_by TEXT
);

-- A sign-in under way: what the callback checks the provider's answer against. The state is
-- stored as its SHA-256 (it travels in URLs); a row is used once, so a replayed callback (the
-- same state, hence the same nonce) is refused.
CREATE TABLE sso_logins (
    state_hash TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL DEFAULT '/',
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX sso_logins_by_expiry ON sso_logins (expires_at);

-- Who a provider's subject is here: matched first, so a person whose e-mail changes at the
-- provider keeps their account.
CREATE TABLE sso_identities (
    org_id TEXT NOT NULL REFERENCES orgs(id),
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    last_login_at TEXT NOT NULL,
    PRIMARY KEY (org_id, issuer, subject)
);
CREATE INDEX sso_identities_by_user ON sso_identities (user_id);
