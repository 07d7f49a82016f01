-- PostgreSQL's copy of migrations/0007_clouds.sql (issue 19): what Azure OpenAI and Vertex AI
-- need beyond a base URL, and the extra headers any provider may send upstream.
ALTER TABLE providers ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';
ALTER TABLE providers ADD COLUMN api_version TEXT;
ALTER TABLE providers ADD COLUMN project TEXT;
ALTER TABLE providers ADD COLUMN region TEXT;
