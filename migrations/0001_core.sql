-- The core schema: providers and their accounts, public models and their routes, client keys,
-- and the change counters that let every process notice configuration changes cheaply.
-- Times are Unix seconds (UTC). `source` records who created a row: 'config' (the config file
-- import owns it), 'api' (admin API or CLI) or 'demo'.

CREATE TABLE providers (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    base_url    TEXT    NOT NULL,
    source      TEXT    NOT NULL DEFAULT 'api',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id           INTEGER PRIMARY KEY,
    provider_id  INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    -- The upstream credential, sealed with AES-256-GCM (nonce || ciphertext || tag).
    api_key      BLOB    NOT NULL,
    -- A masked form safe to show, like 'sk-…a1b2'.
    api_key_hint TEXT    NOT NULL,
    weight       INTEGER NOT NULL DEFAULT 1,
    rpm          INTEGER,
    enabled      INTEGER NOT NULL DEFAULT 1,
    source       TEXT    NOT NULL DEFAULT 'api',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (provider_id, name)
);

CREATE TABLE models (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    strategy      TEXT    NOT NULL DEFAULT 'weighted',
    max_attempts  INTEGER NOT NULL DEFAULT 3,
    timeout_ms    INTEGER,
    source        TEXT    NOT NULL DEFAULT 'api',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE routes (
    id              INTEGER PRIMARY KEY,
    model_id        INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    provider_id     INTEGER NOT NULL REFERENCES providers(id) ON DELETE RESTRICT,
    upstream_model  TEXT    NOT NULL,
    weight          INTEGER NOT NULL DEFAULT 1,
    priority        INTEGER NOT NULL DEFAULT 0,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (model_id, provider_id, upstream_model)
);
CREATE INDEX routes_provider ON routes(provider_id);

CREATE TABLE client_keys (
    id             INTEGER PRIMARY KEY,
    name           TEXT    NOT NULL UNIQUE,
    -- Lowercase hex SHA-256 of the plaintext key; the plaintext is never stored.
    key_hash       TEXT    NOT NULL UNIQUE,
    -- The first characters of the key, to recognise it in listings.
    prefix         TEXT    NOT NULL,
    -- JSON array of model names, or NULL for every model.
    models         TEXT,
    rpm            INTEGER,
    tpm            INTEGER,
    budget_tokens  INTEGER,
    budget_window  TEXT,
    expires_at     INTEGER,
    revoked_at     INTEGER,
    enabled        INTEGER NOT NULL DEFAULT 1,
    source         TEXT    NOT NULL DEFAULT 'api',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- One counter per domain, bumped by the triggers below on every change. Each serving process
-- polls `PRAGMA data_version` (free) and, when it moved, these two numbers, to decide whether
-- to rebuild its catalog or drop its key cache. Usage writes never touch these tables, so they
-- do not cause rebuilds.
CREATE TABLE change_versions (
    domain   TEXT    PRIMARY KEY,
    version  INTEGER NOT NULL
);
INSERT INTO change_versions (domain, version) VALUES ('catalog', 0), ('keys', 0);

CREATE TRIGGER providers_insert AFTER INSERT ON providers BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER providers_update AFTER UPDATE ON providers BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER providers_delete AFTER DELETE ON providers BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER accounts_insert AFTER INSERT ON accounts BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER accounts_update AFTER UPDATE ON accounts BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER accounts_delete AFTER DELETE ON accounts BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER models_insert AFTER INSERT ON models BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER models_update AFTER UPDATE ON models BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER models_delete AFTER DELETE ON models BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER routes_insert AFTER INSERT ON routes BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER routes_update AFTER UPDATE ON routes BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER routes_delete AFTER DELETE ON routes BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'catalog'; END;
CREATE TRIGGER client_keys_insert AFTER INSERT ON client_keys BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'keys'; END;
CREATE TRIGGER client_keys_update AFTER UPDATE ON client_keys BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'keys'; END;
CREATE TRIGGER client_keys_delete AFTER DELETE ON client_keys BEGIN UPDATE change_versions SET version = version + 1 WHERE domain = 'keys'; END;

-- Process-wide settings that must survive restarts (generated secrets' hashes and the like).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
