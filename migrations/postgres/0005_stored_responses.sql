-- PostgreSQL's copy of migrations/0005_stored_responses.sql (issue #16): stored responses of the
-- Responses API. No trigger on this table bumps `change_versions`.
CREATE TABLE stored_responses (
    id                    TEXT    PRIMARY KEY,
    key_id                BIGINT  NOT NULL,
    previous_response_id  TEXT,
    created_at            BIGINT  NOT NULL,
    response              BYTEA   NOT NULL,
    turn                  BYTEA   NOT NULL
);

-- Retention deletes by time.
CREATE INDEX stored_responses_created ON stored_responses(created_at);

-- A deleted key's responses go with it, as on SQLite.
CREATE FUNCTION delete_key_responses() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM stored_responses WHERE key_id = OLD.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER client_keys_delete_responses AFTER DELETE ON client_keys
    FOR EACH ROW EXECUTE FUNCTION delete_key_responses();
