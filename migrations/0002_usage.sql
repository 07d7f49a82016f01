-- Usage accounting: daily rollups (kept forever) and one row per request (kept for the log
-- retention). Only the usage writer and the retention task write here. There are no triggers on
-- these tables: usage writes must never bump `change_versions` and cause catalog rebuilds.
-- Neither table references client_keys or accounts, so deleting a key or an account keeps its
-- history; queries join for names and tolerate missing ones.

-- One row per UTC day × key × public model × upstream account. `account_id` is 0 when no
-- account served the request (a provider without accounts, or no attempt at all): NULL would
-- make every such row distinct under the primary key.
CREATE TABLE usage_daily (
    day                 TEXT    NOT NULL,  -- 'YYYY-MM-DD', UTC
    key_id              INTEGER NOT NULL,
    model               TEXT    NOT NULL,
    account_id          INTEGER NOT NULL DEFAULT 0,
    requests            INTEGER NOT NULL DEFAULT 0,
    errors              INTEGER NOT NULL DEFAULT 0,
    prompt_tokens       INTEGER NOT NULL DEFAULT 0,
    completion_tokens   INTEGER NOT NULL DEFAULT 0,
    cached_tokens       INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens    INTEGER NOT NULL DEFAULT 0,
    -- Requests whose tokens were counted by llmgate because the upstream reported none.
    estimated_requests  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_id, model, account_id)
) WITHOUT ROWID;

-- Budgets are rebuilt at start-up from the spend per key since a day.
CREATE INDEX usage_daily_key_day ON usage_daily(key_id, day);

-- One row per request. `at` is Unix milliseconds (UTC) when the request finished. Ids only grow
-- (AUTOINCREMENT): a row's id never comes back after retention deleted it.
CREATE TABLE request_log (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    at                 INTEGER NOT NULL,
    request_id         TEXT    NOT NULL,
    key_id             INTEGER NOT NULL,
    model              TEXT    NOT NULL,
    endpoint           TEXT    NOT NULL,
    stream             INTEGER NOT NULL,
    provider           TEXT,
    route_id           INTEGER,
    account_id         INTEGER,
    status             INTEGER NOT NULL,
    attempts           INTEGER NOT NULL,
    latency_ms         INTEGER NOT NULL,
    ttfb_ms            INTEGER,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    estimated          INTEGER NOT NULL
);

-- The log is paged newest first, ordered by (at, id): each index ends with `at` (and the
-- implicit rowid), so a filter on its column and a time range read one index range in order.
-- Retention deletes by time through the first.
CREATE INDEX request_log_at ON request_log(at);
CREATE INDEX request_log_key ON request_log(key_id, at);
CREATE INDEX request_log_model ON request_log(model, at);
CREATE INDEX request_log_status ON request_log(status, at);
