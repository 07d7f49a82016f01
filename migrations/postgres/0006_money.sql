-- PostgreSQL's copy of migrations/0006_money.sql (issue #17): per-route prices and limits,
-- dollar budgets per key, and the cost of each request. Amounts are integers: prices in
-- micro-dollars per million tokens, costs and budgets in nano-dollars.
ALTER TABLE routes ADD COLUMN input_price_micros BIGINT;
ALTER TABLE routes ADD COLUMN output_price_micros BIGINT;
ALTER TABLE routes ADD COLUMN cached_input_price_micros BIGINT;
ALTER TABLE routes ADD COLUMN cache_write_price_micros BIGINT;
ALTER TABLE routes ADD COLUMN max_output_tokens BIGINT;
ALTER TABLE routes ADD COLUMN context_window BIGINT;

ALTER TABLE client_keys ADD COLUMN budget_nanos BIGINT;

ALTER TABLE request_log ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;

ALTER TABLE usage_daily ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN estimated_cost_nanos BIGINT NOT NULL DEFAULT 0;
