-- Stored responses of the Responses API (issue #16): what `previous_response_id`,
-- `GET /v1/responses/{id}`, its `input_items` and `DELETE` read. Only the usage writer (in its
-- batch), the retention task and a key's deletion write here. No trigger on this table bumps
-- `change_versions`: storing a response must never cause a catalog rebuild.

-- One row per stored response. `key_id` is the client key that created it, the only one that
-- may read it. `created_at` is Unix milliseconds on the gateway's clock when the response was
-- kept; the retention (`LLMGATE_RESPONSES_RETENTION`) counts from it. `response` is the
-- response object as the client got it; `turn` is `{"input": [items], "output": [items]}`, what
-- a later turn's `previous_response_id` prepends.
CREATE TABLE stored_responses (
    id                    TEXT    PRIMARY KEY,
    key_id                INTEGER NOT NULL,
    previous_response_id  TEXT,
    created_at            INTEGER NOT NULL,
    response              BLOB    NOT NULL,
    turn                  BLOB    NOT NULL
);

-- Retention deletes by time.
CREATE INDEX stored_responses_created ON stored_responses(created_at);

-- A deleted key's responses go with it: key ids are not AUTOINCREMENT, so a key created later
-- may get the same id, and must not read what the deleted one stored.
CREATE TRIGGER client_keys_delete_responses AFTER DELETE ON client_keys
BEGIN DELETE FROM stored_responses WHERE key_id = old.id; END;
