-- Cloud providers (issue 19): what Azure OpenAI and Vertex AI need beyond a base URL, and the
-- extra headers any provider may send upstream. Each is NULL (or an empty object) for the
-- kinds that do not use it.
-- `headers`: a JSON object of header name to value, sent on every upstream request.
-- `api_version`: Azure's `api-version` query parameter.
-- `project`, `region`: Vertex AI's project and location (also a Bedrock region later).
ALTER TABLE providers ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
ALTER TABLE providers ADD COLUMN api_version TEXT;
ALTER TABLE providers ADD COLUMN project TEXT;
ALTER TABLE providers ADD COLUMN region TEXT;
