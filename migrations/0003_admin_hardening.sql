-- Hardening of the admin plane (issue #14).

-- Key listings show a key's well-known head (`sk-lg-` or `sk-`) and four more characters, no
-- longer its first twelve: a leaked listing must leave nearly all of each key to guess. This
-- shortens the prefixes stored before, by the rule of `auth::display_prefix` (GLOB, unlike
-- LIKE, is case-sensitive, as that rule is).
UPDATE client_keys
SET prefix = CASE
    WHEN prefix GLOB 'sk-lg-*' THEN substr(prefix, 1, 10)
    WHEN prefix GLOB 'sk-*' THEN substr(prefix, 1, 7)
    ELSE substr(prefix, 1, 4)
END
WHERE length(prefix) > 4;

-- The generation of admin tokens: every token carries the generation it was issued in and is
-- refused once the generation has moved on. A password change or `llmgate admin logout-all`
-- moves it; every serving process reads it with the other change counters, so the change
-- reaches them all within their poll interval.
INSERT INTO change_versions (domain, version) VALUES ('admin_tokens', 0);
