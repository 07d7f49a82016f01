-- Money (issue #17): per-route prices and limits, dollar budgets per key, and the cost of each
-- request in the request log and the daily rollups.
--
-- Amounts are integers, never floats, so sums do not drift: prices in micro-dollars per
-- million tokens (`0.15` USD per million is 150000), costs and budgets in nano-dollars.

-- A route's own prices and limits; NULL means llmgate's built-in catalog decides (by the
-- route's upstream model), and a route priced nowhere costs nothing and is flagged.
ALTER TABLE routes ADD COLUMN input_price_micros INTEGER;
ALTER TABLE routes ADD COLUMN output_price_micros INTEGER;
ALTER TABLE routes ADD COLUMN cached_input_price_micros INTEGER;
ALTER TABLE routes ADD COLUMN cache_write_price_micros INTEGER;
ALTER TABLE routes ADD COLUMN max_output_tokens INTEGER;
ALTER TABLE routes ADD COLUMN context_window INTEGER;

-- A key's spending budget in nano-dollars, reset by its `budget_window` like `budget_tokens`.
ALTER TABLE client_keys ADD COLUMN budget_nanos INTEGER;

-- What each request cost at the prices of the route that served it, in nano-dollars (an
-- estimate when `estimated` is set: the upstream reported no usage).
ALTER TABLE request_log ADD COLUMN cost_nanos INTEGER NOT NULL DEFAULT 0;

-- The day's cost, and the part of it computed from estimated usage.
ALTER TABLE usage_daily ADD COLUMN cost_nanos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN estimated_cost_nanos INTEGER NOT NULL DEFAULT 0;
