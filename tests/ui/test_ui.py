"""The web console in headless Chromium against a real `llmgate serve --demo`.

Logs in, sees the dashboard with the usage of real requests, creates a key (with a dollar
budget) and uses it, revokes it and sees it refused, changes a route's weight and sets its prices,
sees the cost of requests made after that on the dashboard and in the request log, adds an Azure
and a Vertex AI provider through the form, browses the request log, and fails on any console
error or failed page load. Saves screenshots of the main pages (see SHOTS).
Everything listens on 127.0.0.1; the gateway is stopped at the end.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BINARY = os.environ.get("LLMGATE_BIN", "target/debug/llmgate")
CHROMIUM = os.environ.get("LLMGATE_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "ui-test-admin-password-0123"
# Screenshots go under target/ on every run; `LLMGATE_UI_SCREENSHOTS=docs/screenshots` (as
# `make screenshots` sets it) refreshes the README's pictures instead, so a test run never
# changes a committed file.
SHOTS = os.environ.get(
    "LLMGATE_UI_SCREENSHOTS",
    os.path.join(os.path.dirname(__file__), "..", "..", "target", "ui-screenshots"),
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, deadline=30.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def chat(base, key, text="Hello from the browser test"):
    """A chat completion of demo-echo with `key`; answers (status, body)."""
    return chat_model(base, key, "demo-echo", text)


def chat_model(base, key, model, text="Hello"):
    """A chat completion of `model` with `key`; answers (status, body)."""
    request = urllib.request.Request(
        f"{base}/v1/chat/completions",
        data=json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class Gateway:
    """`llmgate serve --demo` on a free port; `directory` keeps its database (else a new one)."""

    def __init__(self, directory=None):
        self.dir = directory or tempfile.TemporaryDirectory()
        self.port = free_port()
        env = dict(
            os.environ,
            LLMGATE_LOG="warn",
            LLMGATE_ADMIN_PASSWORD=PASSWORD,
            LLMGATE_USAGE_FLUSH_INTERVAL="200ms",
        )
        self.process = subprocess.Popen(
            [
                BINARY, "serve", "--demo",
                "--listen", f"127.0.0.1:{self.port}",
                "--database", f"sqlite://{self.dir.name}/llmgate.db",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.demo_key = None
        found = threading.Event()

        def read():
            for line in self.process.stdout:
                match = re.search(r"demo key \(shown once\): (\S+)", line)
                if match:
                    self.demo_key = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        wait_ready(f"{self.base}/readyz")
        if not found.wait(15):
            raise RuntimeError("serve --demo printed no demo key")

    def stop(self, keep=False):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        if not keep:
            self.dir.cleanup()


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    gateway = Gateway()
    problems = []
    timings = []
    try:
        # Real traffic for the dashboard: a few answers and one refusal (an unknown model).
        # 55 of them: more than one page (50 rows) of the request log.
        for i in range(55):
            status, body = chat(gateway.base, gateway.demo_key, f"warm-up {i}")
            check(status == 200, f"demo chat failed: {status} {body}")
        status, _ = chat(gateway.base, "sk-not-a-key-0000000000000000")
        check(status == 401, f"an unknown key answered {status}")
        time.sleep(0.6)  # one usage flush

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run",
                ],
            )
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
            outside = []
            page.on("request", lambda r: not r.url.startswith(gateway.base) and outside.append(r.url))
            ready = lambda name: page.wait_for_selector(f'#page[data-ready="{name}"]', timeout=10000)

            # `/` redirects to the console, which asks for the password.
            page.goto(gateway.base + "/")
            check(page.url.endswith("/ui/"), f"/ landed on {page.url}")
            expect(page.locator("#login")).to_be_visible()
            page.screenshot(path=os.path.join(SHOTS, "login.png"))

            # A wrong password is refused in place.
            page.fill("#password", "not the password at all")
            page.click("#login-form button")
            expect(page.locator("#login-error")).to_contain_text("Wrong admin password")
            problems[:] = [p for p in problems if "401" not in p]  # the refused login itself

            page.fill("#password", PASSWORD)
            page.click("#login-form button")
            ready("dashboard")
            cookies = {c["name"]: c for c in context.cookies()}
            check(cookies["llmgate_session"]["httpOnly"], "the session cookie is not HttpOnly")
            check(cookies["llmgate_session"]["sameSite"] == "Strict", "the session cookie is not SameSite=Strict")
            check(not cookies["llmgate_csrf"]["httpOnly"], "the CSRF cookie must be readable by the page")

            # The dashboard shows this week's real requests (5 answered by the demo model).
            requests = page.locator(".stat").first.locator("strong")
            check(int(requests.inner_text().replace(",", "")) >= 55, f"dashboard requests: {requests.inner_text()}")
            expect(page.locator("svg.chart").first).to_be_visible()
            check(page.locator("svg.chart .bar title").count() > 0, "chart bars carry no hover numbers")
            expect(page.get_by_text("demo-echo").first).to_be_visible()
            # How long the 30-day dashboard takes to render (printed, not asserted).
            started = time.monotonic()
            page.click('.segmented button:has-text("Last 30 days")')
            page.wait_for_selector('.segmented button[aria-pressed="true"]:has-text("Last 30 days")')
            ready("dashboard")
            timings.append(f"30-day dashboard rendered in {(time.monotonic() - started) * 1000:.0f} ms")
            page.click('.segmented button:has-text("Last hour")')
            ready("dashboard")
            expect(page.locator(".stat").first.locator("strong")).not_to_have_text("0")

            # Keys: create one, see its plaintext once, use it, revoke it, see it refused.
            page.click('nav a[data-page="keys"]')
            ready("keys")
            # The page is keyboard reachable: Tab gets from the top to the form's submit button.
            page.locator("body").focus()
            for _ in range(60):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.textContent") == "Create key":
                    break
            else:
                raise AssertionError("Tab never reached the Create key button")
            page.fill('#create-key input[name="name"]', "browser-test")
            page.fill('#create-key input[name="rpm"]', "60")
            page.fill('#create-key input[name="budget_usd"]', "5")
            page.select_option('#create-key select[name="budget_window"]', "weekly")
            page.click('#create-key button[type="submit"]')
            expect(page.locator("#key-created")).to_be_visible()
            plaintext = page.input_value("#new-key")
            check(plaintext.startswith("sk-"), f"the new key looks wrong: {plaintext!r}")
            expect(page.locator('tr[data-key="browser-test"]')).to_contain_text("active")
            # Its dollar budget, with what it spent this week against it.
            expect(page.locator('tr[data-key="browser-test"] td.budget')).to_contain_text("$0 of $5.00")
            expect(page.locator('tr[data-key="browser-test"] td.budget')).to_contain_text("this week")
            page.screenshot(path=os.path.join(SHOTS, "keys.png"), full_page=True)
            # Edit its limits inline.
            page.get_by_role("button", name="Edit key browser-test").click()
            editor = page.get_by_role("form", name="Edit key browser-test")
            editor.locator('input[name="rpm"]').fill("120")
            editor.locator('input[name="budget_usd"]').fill("7.5")
            editor.get_by_role("button", name="Save").click()
            expect(page.locator('tr[data-key="browser-test"]')).to_contain_text("120 rpm")
            expect(page.locator('tr[data-key="browser-test"] td.budget')).to_contain_text("of $7.50")
            # Rotate it: a new plaintext, shown once; the old one stops working.
            page.get_by_role("button", name="Rotate key browser-test").click()
            page.get_by_role("button", name="Rotate key browser-test").click()  # confirm
            expect(page.locator("#key-created h2")).to_contain_text("rotated")
            old_plaintext, plaintext = plaintext, page.input_value("#new-key")
            check(plaintext != old_plaintext and plaintext.startswith("sk-"), "rotation gave no new key")
            deadline = time.monotonic() + 5
            while chat(gateway.base, old_plaintext, "old key")[0] != 401 and time.monotonic() < deadline:
                time.sleep(0.2)
            check(chat(gateway.base, old_plaintext, "old key")[0] == 401, "the rotated-away key still works")
            status, body = chat(gateway.base, plaintext, "with the key the console made")
            check(status == 200, f"the new key was refused: {status} {body}")
            row = page.locator('tr[data-key="browser-test"]')
            row.get_by_role("button", name="Revoke key browser-test").click()
            row.get_by_role("button", name="Revoke key browser-test").click()  # confirm
            expect(page.locator('tr[data-key="browser-test"]')).to_contain_text("revoked")
            status, body = chat(gateway.base, plaintext, "after revoking")
            check(status == 401, f"a revoked key answered {status}: {body}")
            # A throwaway key, deleted.
            page.fill('#create-key input[name="name"]', "throwaway")
            page.click('#create-key button[type="submit"]')
            expect(page.locator('tr[data-key="throwaway"]')).to_be_visible()
            page.get_by_role("button", name="Delete key throwaway").click()
            page.get_by_role("button", name="Delete key throwaway").click()  # confirm
            expect(page.locator('tr[data-key="throwaway"]')).to_have_count(0)

            # Providers & models: change the demo route's weight, and see it kept.
            page.click('nav a[data-page="providers"]')
            ready("providers")
            route = page.locator('section[data-model="demo-echo"] tr[data-route]').first
            route.locator('input[type="number"]').first.fill("7")
            route.get_by_role("button", name="Save").click()
            expect(page.locator(".status .ok")).to_contain_text("Saved")
            expect(page.locator('section[data-model="demo-echo"] tr[data-route] input[type="number"]').first).to_have_value("7")
            # Price the demo route (the catalog does not know demo-echo, so it is unpriced).
            expect(page.locator('section[data-model="demo-echo"] tr[data-route]').first).to_contain_text("unpriced")
            route.get_by_role("button", name="Prices and limits").click()
            terms = page.locator('section[data-model="demo-echo"] form[aria-label^="Prices and limits"]')
            expect(terms).to_contain_text("in effect: none")
            terms.locator('input[name="input_price"]').fill("2.5")
            terms.locator('input[name="output_price"]').fill("10")
            terms.get_by_role("button", name="Save prices").click()
            expect(page.locator(".status .ok")).to_contain_text("Saved the prices and limits")
            expect(page.locator('section[data-model="demo-echo"] tr[data-route]').first).to_contain_text("$2.50 / $10.00")
            # Requests after the change (the catalog is rebuilt within a second) cost money.
            deadline = time.monotonic() + 10
            while True:
                for i in range(5):
                    status, body = chat(gateway.base, gateway.demo_key, f"a priced request {i} " + "with some words " * 40)
                    check(status == 200, f"priced chat failed: {status} {body}")
                newest = page.request.get(f"{gateway.base}/admin/logs?limit=1").json()["data"]
                if (newest and newest[0]["cost_usd"] > 0) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            check(newest and newest[0]["cost_usd"] > 0, f"requests to the priced route cost nothing: {newest}")
            time.sleep(0.6)  # one usage flush
            # Save the provider's base URL (unchanged, so the demo keeps working).
            provider_row = page.locator('tr[data-provider="demo"]')
            demo_url = provider_row.locator('input[type="url"]').input_value()
            # The demo (openai kind) may serve /responses itself: offered, and off.
            responses_box = provider_row.locator('input[type="checkbox"]')
            expect(responses_box).not_to_be_checked()
            expect(responses_box).to_be_enabled()
            provider_row.get_by_role("button", name="Save provider demo").click()
            expect(page.locator(".status .ok")).to_contain_text("Saved provider demo")
            expect(page.locator('tr[data-provider="demo"] input[type="url"]')).to_have_value(demo_url)
            # An API refusal is shown in place: a provider name that is taken.
            provider_form = page.locator("form.inline").first
            provider_form.locator('input[name="name"]').fill("demo")
            provider_form.locator('input[name="base_url"]').fill("http://127.0.0.1:9/v1")
            provider_form.get_by_role("button", name="Add provider").click()
            expect(page.locator(".status .error")).to_be_visible()
            problems[:] = [p for p in problems if "409" not in p]  # the refusal itself
            # An Azure OpenAI provider through the form: its api-version field and a header row.
            provider_form.locator('input[name="name"]').fill("azure-test")
            provider_form.locator('select[name="kind"]').select_option("azure")
            expect(provider_form.locator('input[name="api_version"]')).to_be_visible()
            expect(provider_form.locator('input[name="project"]')).to_be_hidden()
            expect(provider_form.locator('input[name="responses"]')).to_be_hidden()
            provider_form.locator('input[name="base_url"]').fill("https://example-resource.openai.azure.com/openai")
            provider_form.locator('input[name="api_version"]').fill("2024-10-21")
            provider_form.get_by_role("button", name="Add header").click()
            provider_form.get_by_label("Header name").fill("x-team")
            provider_form.get_by_label("Header value").fill("search")
            provider_form.get_by_role("button", name="Add provider").click()
            expect(page.locator(".status .ok")).to_contain_text("Added provider azure-test")
            azure_row = page.locator('tr[data-provider="azure-test"]')
            expect(azure_row).to_contain_text("api-version 2024-10-21")
            expect(azure_row).to_contain_text("x-team")
            # A Vertex AI provider needs no base URL; its accounts take a service account's JSON.
            provider_form = page.locator("form.inline").first
            provider_form.locator('input[name="name"]').fill("vertex-test")
            provider_form.locator('select[name="kind"]').select_option("vertex")
            provider_form.locator('input[name="project"]').fill("my-project")
            provider_form.locator('input[name="region"]').fill("us-central1")
            provider_form.get_by_role("button", name="Add provider").click()
            expect(page.locator('tr[data-provider="vertex-test"]')).to_contain_text("project my-project")
            account_form = page.locator("form.inline").nth(1)
            account_form.locator('select[name="provider"]').select_option("vertex-test")
            expect(account_form.locator('textarea[name="service_account_json"]')).to_be_visible()
            expect(account_form.locator('input[name="api_key"]')).to_be_hidden()
            account_form.locator('select[name="provider"]').select_option("demo")
            # The Azure provider's settings edited in place: its api-version changed, the header kept.
            azure_row.get_by_role("button", name="Settings of provider azure-test").click()
            settings = page.get_by_role("form", name="Settings of provider azure-test")
            settings.locator('input[name="api_version"]').fill("2025-01-01-preview")
            settings.get_by_role("button", name="Save settings").click()
            expect(page.locator(".status .ok")).to_contain_text("Saved provider azure-test")
            expect(page.locator('tr[data-provider="azure-test"]')).to_contain_text("api-version 2025-01-01-preview")
            expect(page.locator('tr[data-provider="azure-test"]')).to_contain_text("x-team")
            # A new model, routed to the demo upstream, serves requests within a second or so.
            model_form = page.locator("#create-model")
            model_form.locator('input[name="name"]').fill("browser-model")
            model_form.locator('input[name="model"]').fill("demo-echo")
            model_form.get_by_role("button", name="Add model").click()
            expect(page.locator('section[data-model="browser-model"]')).to_be_visible()
            deadline = time.monotonic() + 5
            while True:
                status, body = chat_model(gateway.base, gateway.demo_key, "browser-model")
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            check(status == 200, f"the model added in the console does not serve: {status} {body}")
            # The new model's strategy.
            page.get_by_label("Strategy of browser-model").select_option("least_busy")
            page.get_by_role("button", name="Save model browser-model").click()
            expect(page.locator(".status .ok")).to_contain_text("Saved model browser-model")
            expect(page.locator('section[data-model="browser-model"] h3')).to_contain_text("least_busy")
            # An account: add it, re-weight it, rotate its credential (shown only as a hint).
            account_form = page.locator("form.inline").nth(1)
            account_form.locator('select[name="provider"]').select_option("demo")
            account_form.locator('input[name="name"]').fill("browser-account")
            account_form.locator('input[name="api_key"]').fill("sk-browser-account-secret-0001")
            account_form.get_by_role("button", name="Add account").click()
            expect(page.locator("table").nth(1)).to_contain_text("browser-account")
            check("sk-browser-account-secret-0001" not in page.content(), "the account's key is shown")
            page.get_by_label("Weight of account demo/browser-account").fill("3")
            page.get_by_role("button", name="Save account demo/browser-account").click()
            expect(page.locator(".status .ok")).to_contain_text("Saved account demo/browser-account")
            expect(page.get_by_label("Weight of account demo/browser-account")).to_have_value("3")
            page.get_by_role("button", name="Rotate the credential of demo/browser-account").click()
            page.get_by_label("New API key for demo/browser-account").fill("sk-browser-account-secret-0002")
            page.get_by_role("button", name="Set", exact=True).click()
            expect(page.locator(".status .ok")).to_contain_text("New key set")
            expect(page.locator("table").nth(1)).to_contain_text("0002")
            page.screenshot(path=os.path.join(SHOTS, "providers.png"), full_page=True)

            page.click('nav a[data-page="upstreams"]')
            ready("upstreams")
            expect(page.locator("table").first).to_contain_text("demo-echo")
            # browser-model's route is unpriced: flagged, with where to set a price.
            expect(page.locator(".hint.warn")).to_contain_text("browser-model")
            expect(page.locator(".hint.warn")).to_contain_text("Prices & limits")
            page.screenshot(path=os.path.join(SHOTS, "upstreams.png"), full_page=True)

            # The request log: every request so far, the revoked key's filter, one detail.
            page.click('nav a[data-page="logs"]')
            ready("logs")
            expect(page.locator("tbody tr")).to_have_count(50)
            # The newest request to demo-echo went to the priced route: its cost, in the detail.
            priced_row = page.locator("tbody tr", has=page.locator("td:nth-child(3)", has_text=re.compile("^demo-echo$"))).first
            priced_row.get_by_role("button", name="Details").click()
            cost = page.locator("#log-detail dt:text-is('cost') + dd").inner_text()
            check(re.match(r"\$0\.0\d*[1-9]", cost), f"the request's cost reads {cost!r}")
            page.screenshot(path=os.path.join(SHOTS, "logs.png"))
            newest = page.locator("tbody tr").first.text_content()
            page.click("#older")
            expect(page.locator("tbody tr").first).not_to_have_text(newest)
            check(page.locator("tbody tr").count() < 50, "the second page is not the rest of the log")
            page.get_by_role("button", name="Newer").click()
            expect(page.locator("tbody tr").first).to_have_text(newest)
            page.fill('#log-filters input[name="key"]', "browser-test")
            page.click('#log-filters button[type="submit"]')
            expect(page.locator("tbody tr").first).to_contain_text("browser-test")
            page.locator("tbody tr").first.get_by_role("button", name="Details").click()
            expect(page.locator("#log-detail")).to_contain_text("demo-echo")

            # The dashboard now shows what the priced requests cost: the total, the cost chart
            # (its bars' numbers on hover) and the models ranked by cost.
            page.click('nav a[data-page="dashboard"]')
            ready("dashboard")
            cost_stat = page.locator(".stat", has=page.locator(".label", has_text="Cost")).locator("strong")
            check(cost_stat.inner_text() not in ("$0", ""), f"dashboard cost: {cost_stat.inner_text()!r}")
            check(
                any(re.search(r": \$0\.\d", t) for t in page.locator("#cost-chart svg .bar title").all_text_contents()),
                "the cost chart's bars carry no dollars",
            )
            page.click('.segmented button:has-text("Last 7 days")')
            page.wait_for_selector('.segmented button[aria-pressed="true"]:has-text("Last 7 days")')
            ready("dashboard")
            page.get_by_role("button", name="By cost").click()
            ready("dashboard")
            expect(page.locator(".columns section").nth(1).locator("tbody tr").first).to_contain_text("demo-echo")
            page.screenshot(path=os.path.join(SHOTS, "dashboard.png"), full_page=True)

            # A phone-width look at the dashboard and the keys.
            page.set_viewport_size({"width": 390, "height": 844})
            page.click('nav a[data-page="keys"]')
            ready("keys")
            page.screenshot(path=os.path.join(SHOTS, "keys-phone.png"), full_page=True)
            page.click('nav a[data-page="providers"]')
            ready("providers")
            page.screenshot(path=os.path.join(SHOTS, "providers-phone.png"), full_page=True)
            page.click('nav a[data-page="dashboard"]')
            ready("dashboard")
            page.screenshot(path=os.path.join(SHOTS, "dashboard-phone.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 860})

            # Logging out clears the session: the API refuses the browser afterwards.
            page.click("#logout")
            expect(page.locator("#login")).to_be_visible()
            names = {c["name"] for c in context.cookies()}
            check("llmgate_session" not in names, f"logout left the session cookie: {names}")

            check(not outside, f"the console requested other origins: {outside}")
            browser.close()
    finally:
        gateway.stop()
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise SystemExit(f"{len(problems)} browser problem(s)")
    for timing in timings:
        print(f"ui: {timing}")
    print(f"ui: ok (screenshots in {SHOTS})")


if __name__ == "__main__":
    main()
