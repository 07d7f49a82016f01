-- A provider may serve OpenAI's Responses API itself (`responses = true` in the config file, the
-- admin API's `responses` field): a `/v1/responses` request routed to it is forwarded to
-- `{base_url}/responses` instead of being translated to chat. Only OpenAI-compatible kinds may
-- set it; llmgate checks that where the flag is written (config file, admin API).
ALTER TABLE providers ADD COLUMN responses INTEGER NOT NULL DEFAULT 0;
