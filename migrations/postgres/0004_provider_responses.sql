-- PostgreSQL's copy of migrations/0004_provider_responses.sql: a provider may serve OpenAI's
-- Responses API itself.
ALTER TABLE providers ADD COLUMN responses BOOLEAN NOT NULL DEFAULT FALSE;
