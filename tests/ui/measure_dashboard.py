"""How long the console's dashboard takes to render over a large database (OPTIMIZATION.md, "The
web console"). Not part of `make test`: run it by hand after `bash tests/ui/run.sh` made the
virtualenv:

    cargo build --release --locked --bin llmgate
    LLMGATE_BIN=target/release/llmgate target/ui-venv/bin/python tests/ui/measure_dashboard.py

It starts `llmgate serve --demo` on a temporary database, adds a few keys and accounts through
the admin API, then writes a year of daily usage rollups (365 days x keys x models x accounts)
and a large request log (LLMGATE_MEASURE_LOG_ROWS, default 200,000 rows over the last 30 days,
a few thousand in the last hour) straight into the database with sqlite3, as the usage writer
would have. It then opens the console in headless Chromium and times each range of the
dashboard from the click to the rendered page, and the slowest admin API call it made, over
several runs. It also prints SQLite's plan for the queries the dashboard makes.
"""

import datetime
import json
import os
import random
import sqlite3
import statistics
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

from test_ui import CHROMIUM, PASSWORD, Gateway

LOG_ROWS = int(os.environ.get("LLMGATE_MEASURE_LOG_ROWS", "200000"))
RUNS = int(os.environ.get("LLMGATE_MEASURE_RUNS", "5"))
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-flash", "demo-echo"]
DAY_MS = 86_400_000


def admin(base, token, method, path, body=None):
    request = urllib.request.Request(
        f"{base}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def seed(database, key_ids, account_ids, now_ms):
    """A year of rollups and LOG_ROWS request log rows, written in one transaction each."""
    rng = random.Random(7)
    db = sqlite3.connect(database, timeout=30)
    today = datetime.datetime.fromtimestamp(now_ms / 1000, datetime.timezone.utc).date()
    rollups = []
    for back in range(365):
        day = (today - datetime.timedelta(days=back)).isoformat()
        for key_id in key_ids:
            for model in MODELS:
                for account_id in account_ids:
                    requests = rng.randint(20, 400)
                    prompt = requests * rng.randint(200, 2000)
                    completion = requests * rng.randint(50, 600)
                    cost = prompt * 2500 + completion * 10000  # nano-dollars at $2.50 / $10 per 1M
                    rollups.append((day, key_id, model, account_id, requests, requests // 50, prompt, completion, prompt // 10, 0, requests // 100, cost, cost // 100))
    with db:
        db.executemany(
            "INSERT OR REPLACE INTO usage_daily (day, key_id, model, account_id, requests, errors, "
            "prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, estimated_requests, "
            "cost_nanos, estimated_cost_nanos) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rollups,
        )
    rows = []
    for i in range(LOG_ROWS):
        # The newest 3,000 in the last hour, the rest spread over 30 days.
        at = now_ms - (rng.randint(0, 3_600_000) if i < 3000 else rng.randint(3_600_000, 30 * DAY_MS))
        prompt, completion = rng.randint(20, 3000), rng.randint(5, 800)
        status = 200 if rng.random() > 0.02 else rng.choice([429, 500, 502])
        rows.append((
            at, f"req-seed-{i:08d}", rng.choice(key_ids), rng.choice(MODELS), "chat_completions",
            rng.randint(0, 1), "demo", None, rng.choice(account_ids), status, 1,
            rng.randint(80, 4000), rng.randint(40, 900), prompt, completion, 0, 0,
            0, prompt * 2500 + completion * 10000,
        ))
    rows.sort()
    with db:
        db.executemany(
            "INSERT INTO request_log (at, request_id, key_id, model, endpoint, stream, provider, "
            "route_id, account_id, status, attempts, latency_ms, ttfb_ms, prompt_tokens, "
            "completion_tokens, cached_tokens, reasoning_tokens, estimated, cost_nanos) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    counts = {
        table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("usage_daily", "request_log")
    }
    plans = {}
    month_ago = (today - datetime.timedelta(days=29)).isoformat()
    for name, sql, args in [
        ("usage by key, 30 days",
         "SELECT u.key_id, SUM(u.requests) FROM usage_daily u LEFT JOIN client_keys k ON k.id = u.key_id "
         "WHERE u.day >= ? AND u.day <= ? GROUP BY u.key_id", (month_ago, "9999-12-31")),
        ("log page, newest 500 since a day",
         "SELECT l.id FROM request_log l LEFT JOIN client_keys k ON k.id = l.key_id "
         "LEFT JOIN accounts a ON a.id = l.account_id WHERE 1 = 1 AND l.at >= ? "
         "ORDER BY l.at DESC, l.id DESC LIMIT 501", (now_ms - 30 * DAY_MS,)),
    ]:
        plans[name] = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args)]
    db.close()
    return counts, plans


def main():
    gateway = Gateway()
    database = os.path.join(gateway.dir.name, "llmgate.db")
    try:
        login = urllib.request.Request(
            f"{gateway.base}/admin/login",
            data=json.dumps({"password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(login, timeout=10) as response:
            token = json.loads(response.read())["token"]
        key_ids = [k["id"] for k in admin(gateway.base, token, "GET", "/admin/keys")["data"]]
        for name in ("team-search", "team-support", "ci", "batch-jobs"):
            key_ids.append(admin(gateway.base, token, "POST", "/admin/keys", {"name": name, "budget_usd": 500, "budget_window": "monthly"})["id"])
        account_ids = [
            admin(gateway.base, token, "POST", "/admin/accounts", {"provider": "demo", "name": name, "api_key": f"sk-measure-{name}", "enabled": False})["id"]
            for name in ("primary", "backup")
        ]
        started = time.monotonic()
        counts, plans = seed(database, key_ids, account_ids, int(time.time() * 1000))
        print(f"seeded in {time.monotonic() - started:.1f} s: {counts}")
        for name, plan in plans.items():
            print(f"plan of {name}: {' / '.join(plan)}")

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors = []
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.goto(gateway.base + "/ui/")
            page.fill("#password", PASSWORD)
            started = time.monotonic()
            page.click("#login-form button")
            page.wait_for_selector('#page[data-ready="dashboard"]', timeout=60000)
            print(f"login to the first dashboard (last 7 days): {(time.monotonic() - started) * 1000:.0f} ms")
            for label in ["Last hour", "Today", "Last 7 days", "Last 30 days"]:
                renders, slowest = [], []
                for _ in range(RUNS):
                    page.evaluate("performance.clearResourceTimings()")
                    started = time.monotonic()
                    page.click(f'.segmented button:has-text("{label}")')
                    page.wait_for_selector(f'.segmented button[aria-pressed="true"]:has-text("{label}")')
                    page.wait_for_selector('#page[data-ready="dashboard"]', timeout=60000)
                    renders.append((time.monotonic() - started) * 1000)
                    slowest.append(page.evaluate(
                        "Math.max(0, ...performance.getEntriesByType('resource')"
                        ".filter((e) => e.name.includes('/admin/')).map((e) => e.duration))"
                    ))
                print(f"{label}: render median {statistics.median(renders):.0f} ms (min {min(renders):.0f}, max {max(renders):.0f}); "
                      f"slowest admin call median {statistics.median(slowest):.0f} ms")
            for name in ("keys", "logs"):
                started = time.monotonic()
                page.click(f'nav a[data-page="{name}"]')
                page.wait_for_selector(f'#page[data-ready="{name}"]', timeout=60000)
                print(f"{name} page: {(time.monotonic() - started) * 1000:.0f} ms")
            browser.close()
            if errors:
                sys.exit(f"console errors: {errors}")
    finally:
        gateway.stop()


if __name__ == "__main__":
    main()
