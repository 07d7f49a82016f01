-- PostgreSQL's copy of migrations/0003_admin_hardening.sql (issue #14).

-- Shortens key prefixes stored before, by the rule of `auth::display_prefix`. PostgreSQL's LIKE
-- is case-sensitive, as SQLite's GLOB is, and neither pattern holds a wildcard but `%`.
UPDATE client_keys
SET prefix = CASE
    WHEN prefix LIKE 'sk-lg-%' THEN substr(prefix, 1, 10)
    WHEN prefix LIKE 'sk-%' THEN substr(prefix, 1, 7)
    ELSE substr(prefix, 1, 4)
END
WHERE length(prefix) > 4;

-- The generation of admin tokens, moved on by a password change or `llmgate admin logout-all`.
INSERT INTO change_versions (domain, version) VALUES ('admin_tokens', 0);
