// The console's pages. Each renders into the element it is given, from the admin API, and
// shows the API's errors where they happened. Text from the API is always set as text, never
// parsed as HTML.

import { api, get, query } from "./api.js";
import { barChart, formatNumber } from "./charts.js";

// An element: h("button", {class: "x", onclick: f}, "text", child, ...).
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Replaces a node's children, skipping the null and false of conditional parts.
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
}

function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

function empty(text, ...rest) {
  return h("p", { class: "empty" }, text, ...rest);
}

// Runs `work`, showing its error in `place` (replacing what was there) when it fails.
async function guarded(place, work) {
  try {
    await work();
  } catch (error) {
    place.replaceChildren(errorBox(error));
  }
}

// A button whose action runs once, disabled while it runs; errors land in `status`.
function action(label, status, work, attributes = {}) {
  const button = h("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.replaceChildren();
    try {
      await work(button);
    } catch (error) {
      status.replaceChildren(errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// A button for an action that cannot be undone: the first press asks (the button turns red
// and says so), the second does it.
function confirmed(label, confirmLabel, status, work, attributes = {}) {
  return action(label, status, async (button) => {
    if (button.dataset.armed !== "yes") {
      button.dataset.armed = "yes";
      button.textContent = confirmLabel;
      button.classList.add("danger");
      return;
    }
    await work(button);
  }, attributes);
}

function table(headings, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows),
    ),
  );
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || text}` }, text);
}

const today = () => new Date().toISOString().slice(0, 10);
function daysAgo(days) {
  return new Date(Date.now() - days * 86400000).toISOString().slice(0, 10);
}
function shortTime(rfc3339) {
  if (!rfc3339) return "–";
  // 2026-01-31 12:00:00 UTC: unambiguous in every locale.
  return `${new Date(rfc3339).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

// ---------------------------------------------------------------- dashboard

const RANGES = [
  { id: "hour", label: "Last hour" },
  { id: "day", label: "Today" },
  { id: "week", label: "Last 7 days" },
  { id: "month", label: "Last 30 days" },
];

let dashboardRange = "week";

function totals(lines) {
  const sum = { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: null };
  for (const line of lines) {
    sum.requests += line.requests;
    sum.errors += line.errors;
    sum.prompt_tokens += line.prompt_tokens;
    sum.completion_tokens += line.completion_tokens;
    if (typeof line.cost_usd === "number") sum.cost_usd = (sum.cost_usd || 0) + line.cost_usd;
  }
  return sum;
}

function stat(label, value, note) {
  return h("div", { class: "stat card" }, h("span", { class: "label" }, label), h("strong", {}, value), note ? h("span", { class: "note" }, note) : null);
}

function topList(title, lines, nameOf, none = "No requests in this range.") {
  const sorted = [...lines].sort((a, b) => b.requests - a.requests).slice(0, 5);
  const rows = sorted.map((line) =>
    h("tr", {}, h("td", {}, nameOf(line)), h("td", { class: "num" }, formatNumber(line.requests)), h("td", { class: "num" }, formatNumber(line.errors)), h("td", { class: "num" }, formatNumber(line.prompt_tokens + line.completion_tokens))),
  );
  return h("section", { class: "card" }, h("h2", {}, title), rows.length ? table(["name", "requests", "errors", "tokens"], rows) : empty(none));
}

// Usage of the last hour, from the request log (the rollups are by day): its newest 1000 rows.
async function lastHour() {
  const from = new Date(Date.now() - 3600000).toISOString().replace(/\.\d+Z$/, "Z");
  const page = await get(`/admin/logs${query({ from, limit: 1000 })}`);
  const rows = page.data;
  const buckets = new Map();
  const keys = new Map();
  const models = new Map();
  const add = (map, name, row) => {
    const line = map.get(name) || { name, requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0 };
    line.requests += 1;
    line.errors += row.status >= 400 ? 1 : 0;
    line.prompt_tokens += row.prompt_tokens;
    line.completion_tokens += row.completion_tokens;
    map.set(name, line);
  };
  const now = Date.now();
  for (let i = 11; i >= 0; i -= 1) {
    const start = new Date(now - (i + 1) * 300000);
    buckets.set(i, { name: start.toISOString().slice(11, 16), requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0 });
  }
  for (const row of rows) {
    const index = Math.min(11, Math.floor((now - new Date(row.at).getTime()) / 300000));
    const bucket = buckets.get(index);
    if (bucket) {
      bucket.requests += 1;
      bucket.errors += row.status >= 400 ? 1 : 0;
      bucket.prompt_tokens += row.prompt_tokens;
      bucket.completion_tokens += row.completion_tokens;
    }
    add(keys, row.key || `key ${row.key_id}`, row);
    add(models, row.model, row);
  }
  const accounts = new Map();
  for (const row of rows) if (row.provider) add(accounts, `${row.provider}/${row.account ?? "–"}`, row);
  return {
    series: [...buckets.values()].map((b) => ({ ...b, label: b.name })),
    keys: [...keys.values()],
    models: [...models.values()],
    accounts: [...accounts.values()],
    sample: rows,
    partial: page.next_cursor !== null,
  };
}

const LATENCY_SAMPLE = 500;

// The p-th percentile (0..100) of numbers, or null for none.
function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const ms = (value) => (value === null ? "–" : `${value.toLocaleString("en-US")} ms`);

async function rollups(range) {
  const days = { day: 0, week: 6, month: 29 }[range];
  const span = { from: daysAgo(days), to: today() };
  // Totals come from the daily rollups; latency from the newest rows of the request log only,
  // so the page costs the same however long the log is.
  const [byDay, byKey, byModel, byAccount, sample] = await Promise.all([
    get(`/admin/usage${query({ ...span, group_by: "day" })}`),
    get(`/admin/usage${query({ ...span, group_by: "key" })}`),
    get(`/admin/usage${query({ ...span, group_by: "model" })}`),
    get(`/admin/usage${query({ ...span, group_by: "account" })}`),
    get(`/admin/logs${query({ from: span.from, limit: LATENCY_SAMPLE })}`),
  ]);
  // Every day of the range gets a bar, with or without traffic.
  const lines = new Map(byDay.data.map((line) => [line.day, line]));
  const series = [];
  for (let i = days; i >= 0; i -= 1) {
    const day = daysAgo(i);
    const line = lines.get(day) || { requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0 };
    series.push({ ...line, label: day.slice(5) });
  }
  return {
    series,
    keys: byKey.data.map((line) => ({ ...line, name: line.key ?? `deleted key ${line.key_id ?? ""}` })),
    models: byModel.data.map((line) => ({ ...line, name: line.model })),
    accounts: byAccount.data.filter((line) => line.provider).map((line) => ({ ...line, name: `${line.provider}/${line.account ?? "–"}` })),
    sample: sample.data,
    partial: false,
  };
}

export async function dashboard(root) {
  // Tests and scripts wait for data-ready; a range change re-renders without a route change.
  delete root.dataset.ready;
  const body = h("div", { class: "stack" }, h("p", { class: "loading" }, "Loading usage…"));
  const picker = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "Time range" },
    RANGES.map((range) =>
      h("button", {
        type: "button",
        "aria-pressed": range.id === dashboardRange ? "true" : "false",
        onclick: () => {
          dashboardRange = range.id;
          dashboard(root);
        },
      }, range.label),
    ),
  );
  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Dashboard"), picker), body);
  await guarded(body, async () => {
    const data = dashboardRange === "hour" ? await lastHour() : await rollups(dashboardRange);
    const sum = totals(data.series);
    const latencies = data.sample.map((row) => row.latency_ms);
    const ttfbs = data.sample.filter((row) => row.ttfb_ms !== null).map((row) => row.ttfb_ms);
    const latencyNote = data.sample.length ? `over the newest ${data.sample.length} requests` : "no requests";
    // The cards' inner width: the charts are drawn at the size they are shown.
    const width = body.clientWidth - 38;
    const errorRate = sum.requests ? `${((sum.errors / sum.requests) * 100).toFixed(1)}% of requests` : "no requests";
    const points = data.series.map((line) => ({
      label: line.label,
      value: line.requests,
      part: line.errors,
      title: `${line.label}: ${line.requests.toLocaleString("en-US")} requests, ${line.errors.toLocaleString("en-US")} errors, ${(line.prompt_tokens + line.completion_tokens).toLocaleString("en-US")} tokens`,
    }));
    const tokenPoints = data.series.map((line) => ({
      label: line.label,
      value: line.prompt_tokens + line.completion_tokens,
      part: line.completion_tokens,
      title: `${line.label}: ${line.prompt_tokens.toLocaleString("en-US")} prompt + ${line.completion_tokens.toLocaleString("en-US")} completion tokens`,
    }));
    fill(body,
      h(
        "div",
        { class: "stats" },
        stat("Requests", formatNumber(sum.requests)),
        stat("Errors", formatNumber(sum.errors), errorRate),
        stat("Tokens", formatNumber(sum.prompt_tokens + sum.completion_tokens), `${formatNumber(sum.prompt_tokens)} prompt · ${formatNumber(sum.completion_tokens)} completion`),
        sum.cost_usd !== null ? stat("Cost", `$${sum.cost_usd.toFixed(2)}`) : null,
        stat("Latency p50 / p95", `${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 95))}`, latencyNote),
        stat("Time to first byte p50 / p95", `${ms(percentile(ttfbs, 50))} / ${ms(percentile(ttfbs, 95))}`, latencyNote),
      ),
      data.partial ? h("p", { class: "hint" }, "More than 1000 requests in the last hour: the figures cover the newest 1000.") : null,
      h("section", { class: "card" }, h("h2", {}, "Requests"), barChart(points, { name: "requests", partName: "errors", width })),
      h("section", { class: "card" }, h("h2", {}, "Tokens"), barChart(tokenPoints, { name: "prompt", partName: "completion", partClass: "part alt", width })),
      h("div", { class: "columns" }, topList("Busiest keys", data.keys, (l) => l.name), topList("Busiest models", data.models, (l) => l.name), topList("Busiest accounts", data.accounts, (l) => l.name, "No request reached a provider account in this range (keyless providers, like the demo, have none).")),
    );
  });
  root.dataset.ready = "dashboard";
}

// ---------------------------------------------------------------- keys

function numberOrNull(text) {
  const trimmed = text.trim();
  return trimmed === "" ? undefined : Number(trimmed);
}

export async function keys(root) {
  const status = h("div", { class: "status", "aria-live": "polite" });
  const created = h("div", { "aria-live": "polite" });
  const list = h("div", {}, h("p", { class: "loading" }, "Loading keys…"));
  const form = h(
    "form",
    { class: "card form-grid", id: "create-key" },
    h("h2", {}, "Create a key"),
    h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 128, autocomplete: "off" })),
    h("label", {}, "Models (comma-separated; empty: all)", h("input", { name: "models", autocomplete: "off" })),
    h("label", {}, "Requests per minute", h("input", { name: "rpm", type: "number", min: 1, inputmode: "numeric" })),
    h("label", {}, "Tokens per minute", h("input", { name: "tpm", type: "number", min: 1, inputmode: "numeric" })),
    h("label", {}, "Expires on (UTC)", h("input", { name: "expires_at", type: "date" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Create key")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const body = { name: fields.get("name").trim() };
    const models = fields.get("models").split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    for (const name of ["rpm", "tpm"]) {
      const value = numberOrNull(fields.get(name));
      if (value !== undefined) body[name] = value;
    }
    if (fields.get("expires_at")) body.expires_at = `${fields.get("expires_at")}T23:59:59Z`;
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    status.replaceChildren();
    try {
      const key = await api("POST", "/admin/keys", body);
      form.reset();
      created.replaceChildren(shownOnce(key));
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    } finally {
      submit.disabled = false;
    }
  });

  async function refresh() {
    await guarded(list, async () => {
      const [page, usage] = await Promise.all([
        get("/admin/keys?limit=1000"),
        get(`/admin/usage${query({ from: daysAgo(29), to: today(), group_by: "key" })}`),
      ]);
      const usageOf = new Map(usage.data.map((line) => [line.key_id, line]));
      if (page.data.length === 0) {
        list.replaceChildren(empty("No keys yet — create one below."));
        return;
      }
      const rows = page.data.map((key) => {
        const actions = h("div", { class: "actions" });
        if (key.status !== "revoked") {
          actions.append(
            h("button", { type: "button", "aria-label": `Edit key ${key.name}`, onclick: (event) => editKey(event.target.closest("tr"), key, status, refresh) }, "Edit"),
            action(key.enabled ? "Disable" : "Enable", status, async () => {
              await api("PATCH", `/admin/keys/${key.id}`, { enabled: !key.enabled });
              await refresh();
            }),
            confirmed("Rotate", "Confirm rotate", status, async () => {
              const rotated = await api("POST", `/admin/keys/${key.id}/rotate`);
              created.replaceChildren(shownOnce(rotated, "rotated"));
              await refresh();
            }, { "aria-label": `Rotate key ${key.name}` }),
            confirmed("Revoke", "Confirm revoke", status, async () => {
              await api("POST", `/admin/keys/${key.id}/revoke`);
              await refresh();
            }, { "aria-label": `Revoke key ${key.name}` }),
          );
        }
        actions.append(
          confirmed("Delete", "Confirm delete", status, async () => {
            await api("DELETE", `/admin/keys/${key.id}`);
            await refresh();
          }, { "aria-label": `Delete key ${key.name}` }),
        );
        const limits = [key.rpm ? `${key.rpm} rpm` : null, key.tpm ? `${key.tpm} tpm` : null, key.budget_tokens ? `${formatNumber(key.budget_tokens)} tokens/${key.budget_window || "window"}` : null].filter(Boolean);
        return h(
          "tr",
          { "data-key": key.name },
          h("td", {}, key.name),
          h("td", {}, h("code", {}, `${key.prefix}…`)),
          h("td", {}, badge(key.status)),
          h("td", {}, key.models ? key.models.join(", ") : "all"),
          h("td", {}, limits.join(", ") || "none"),
          h("td", {}, key.expires_at ? shortTime(key.expires_at) : "never"),
          h("td", { class: "num" }, formatNumber(usageOf.get(key.id)?.requests ?? 0)),
          h("td", { class: "num" }, formatNumber((usageOf.get(key.id)?.prompt_tokens ?? 0) + (usageOf.get(key.id)?.completion_tokens ?? 0))),
          h("td", {}, actions),
        );
      });
      list.replaceChildren(table(["name", "key", "status", "models", "limits", "expires", "requests (30 d)", "tokens (30 d)", ""], rows));
    });
  }

  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Keys")), created, status, h("section", { class: "card" }, list), form);
  await refresh();
}

// An inline form under a key's row: its name, models, limits and expiry. An emptied field is
// sent as null, which clears the limit.
function editKey(row, key, status, refresh) {
  if (row.nextElementSibling && row.nextElementSibling.classList.contains("editor")) {
    row.nextElementSibling.remove();
    return;
  }
  const form = h(
    "form",
    { class: "form-grid", "aria-label": `Edit key ${key.name}` },
    h("label", {}, "Name", h("input", { name: "name", value: key.name, required: true })),
    h("label", {}, "Models (empty: all)", h("input", { name: "models", value: key.models ? key.models.join(", ") : "" })),
    h("label", {}, "Requests per minute", h("input", { name: "rpm", type: "number", min: 1, value: key.rpm ?? "" })),
    h("label", {}, "Tokens per minute", h("input", { name: "tpm", type: "number", min: 1, value: key.tpm ?? "" })),
    h("label", {}, "Expires on (UTC)", h("input", { name: "expires_at", type: "date", value: key.expires_at ? key.expires_at.slice(0, 10) : "" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Save"), h("button", { type: "button", class: "quiet", onclick: () => editor.remove() }, "Cancel")),
  );
  const editor = h("tr", { class: "editor" }, h("td", { colspan: 9 }, form));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const models = fields.get("models").split(",").map((m) => m.trim()).filter(Boolean);
    const patch = {
      name: fields.get("name").trim(),
      models: models.length ? models : null,
      rpm: numberOrNull(fields.get("rpm")) ?? null,
      tpm: numberOrNull(fields.get("tpm")) ?? null,
      expires_at: fields.get("expires_at") ? `${fields.get("expires_at")}T23:59:59Z` : null,
    };
    status.replaceChildren();
    try {
      await api("PATCH", `/admin/keys/${key.id}`, patch);
      await refresh();
      status.replaceChildren(h("p", { class: "ok" }, `Saved key ${patch.name}.`));
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  row.after(editor);
  form.querySelector("input").focus();
}

function shownOnce(key, what = "created") {
  const field = h("input", { readonly: true, value: key.key, id: "new-key", "aria-label": "The new key" });
  const copied = h("span", { class: "note", "aria-live": "polite" });
  const copy = h("button", { type: "button" }, "Copy");
  copy.addEventListener("click", async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(key.key);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  });
  return h(
    "section",
    { class: "card notice", id: "key-created" },
    h("h2", {}, `Key “${key.name}” ${what}`),
    h("p", {}, "Copy it now: this is the only time it is shown."),
    h("div", { class: "copy-row" }, field, copy),
    copied,
  );
}

// ---------------------------------------------------------------- providers, accounts, models

export async function providers(root) {
  const status = h("div", { class: "status", "aria-live": "polite" });
  const body = h("div", { class: "stack" }, h("p", { class: "loading" }, "Loading…"));
  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Providers & models")), status, body);

  async function refresh() {
    await guarded(body, async () => {
      const [providerPage, accountPage, modelPage] = await Promise.all([
        get("/admin/providers?limit=1000"),
        get("/admin/accounts?limit=1000"),
        get("/admin/models?limit=1000"),
      ]);
      const providerRows = providerPage.data.map((p) => {
        const url = h("input", { type: "url", value: p.base_url, class: "wide", "aria-label": `Base URL of ${p.name}` });
        // Only OpenAI-compatible providers may serve the Responses API themselves.
        const responses = h("input", { type: "checkbox", "aria-label": `${p.name} serves /responses itself (forwarded, not translated)` });
        responses.checked = p.responses;
        responses.disabled = p.kind !== "openai";
        return h(
          "tr",
          { "data-provider": p.name },
          h("td", {}, p.name),
          h("td", {}, p.kind),
          h("td", {}, url),
          h("td", {}, responses),
          h("td", {}, p.source),
          h("td", {}, h("div", { class: "actions" }, action("Save", status, async () => {
            const changes = { base_url: url.value.trim() };
            if (p.kind === "openai") changes.responses = responses.checked;
            await api("PATCH", `/admin/providers/${p.id}`, changes);
            await refresh();
            status.replaceChildren(h("p", { class: "ok" }, `Saved provider ${p.name}.`));
          }, { "aria-label": `Save provider ${p.name}` }))),
        );
      });
      const accountRows = accountPage.data.map((a) => {
        const accountWeight = h("input", { type: "number", min: 0, value: a.weight, class: "small", "aria-label": `Weight of account ${a.provider}/${a.name}` });
        return h(
          "tr",
          {},
          h("td", {}, a.provider),
          h("td", {}, a.name),
          h("td", {}, h("code", {}, a.api_key_hint)),
          h("td", {}, accountWeight),
          h("td", {}, badge(a.enabled ? "enabled" : "disabled")),
          h("td", {}, h("div", { class: "actions" },
            action("Save", status, async () => {
              await api("PATCH", `/admin/accounts/${a.id}`, { weight: Number(accountWeight.value) });
              await refresh();
              status.replaceChildren(h("p", { class: "ok" }, `Saved account ${a.provider}/${a.name}.`));
            }, { "aria-label": `Save account ${a.provider}/${a.name}` }),
            action(a.enabled ? "Disable" : "Enable", status, async () => {
              await api("PATCH", `/admin/accounts/${a.id}`, { enabled: !a.enabled });
              await refresh();
            }),
            rotateCredential(a, status, refresh),
          )),
        );
      });
      const modelSections = modelPage.data.map((m) =>
        h(
          "section",
          { class: "card", "data-model": m.name },
          h("h3", {}, m.name, " ", h("span", { class: "note" }, `${m.strategy}, up to ${m.max_attempts} attempts${m.timeout ? `, timeout ${m.timeout}` : ""}`)),
          modelSettings(m, status, refresh),
          m.routes.length
            ? table(
                ["provider", "upstream model", "weight", "priority", "state", ""],
                m.routes.map((r) => routeRow(r, status, refresh)),
              )
            : empty("No routes: requests for this model fail until one is added."),
        ),
      );
      fill(body,
        h("section", { class: "card" }, h("h2", {}, "Providers"), providerRows.length ? table(["name", "kind", "base URL", "serves /responses", "source", ""], providerRows) : empty("No providers yet — add one below."), providerForm(status, refresh)),
        h("section", { class: "card" }, h("h2", {}, "Accounts"), accountRows.length ? table(["provider", "name", "key", "weight", "state", ""], accountRows) : empty("No accounts yet — add one below."), accountForm(providerPage.data, status, refresh)),
        h("h2", {}, "Models and their routes"),
        ...(modelSections.length ? modelSections : [empty("No models yet — add one below.")]),
        modelForm(providerPage.data, status, refresh),
      );
    });
  }
  await refresh();
}

function routeRow(route, status, refresh) {
  const weight = h("input", { type: "number", min: 0, value: route.weight, class: "small", "aria-label": `Weight of ${route.provider}/${route.model}` });
  const priority = h("input", { type: "number", min: 0, value: route.priority, class: "small", "aria-label": `Priority of ${route.provider}/${route.model}` });
  return h(
    "tr",
    { "data-route": route.id },
    h("td", {}, route.provider),
    h("td", {}, route.model),
    h("td", {}, weight),
    h("td", {}, priority),
    h("td", {}, badge(route.enabled ? "enabled" : "disabled")),
    h(
      "td",
      {},
      h(
        "div",
        { class: "actions" },
        action("Save", status, async () => {
          await api("PATCH", `/admin/routes/${route.id}`, { weight: Number(weight.value), priority: Number(priority.value) });
          await refresh();
          status.replaceChildren(h("p", { class: "ok" }, `Saved ${route.provider}/${route.model}.`));
        }),
        action(route.enabled ? "Disable" : "Enable", status, async () => {
          await api("PATCH", `/admin/routes/${route.id}`, { enabled: !route.enabled });
          await refresh();
        }),
      ),
    ),
  );
}

// A model's strategy and attempts, changed in place.
function modelSettings(model, status, refresh) {
  const strategy = h("select", { "aria-label": `Strategy of ${model.name}` }, STRATEGIES.map((k) => h("option", { value: k, selected: k === model.strategy }, k)));
  const attempts = h("input", { type: "number", min: 1, value: model.max_attempts, class: "small", "aria-label": `Most attempts for ${model.name}` });
  return h(
    "div",
    { class: "inline-settings" },
    h("label", {}, "Strategy", strategy),
    h("label", {}, "Most attempts", attempts),
    h("div", { class: "actions" }, action("Save", status, async () => {
      await api("PATCH", `/admin/models/${model.id}`, { strategy: strategy.value, max_attempts: Number(attempts.value) });
      await refresh();
      status.replaceChildren(h("p", { class: "ok" }, `Saved model ${model.name}.`));
    }, { "aria-label": `Save model ${model.name}` })),
  );
}

const STRATEGIES = ["weighted", "least_busy", "latency"];

// "Rotate key": an inline field for the account's new credential (write-only, like the API).
function rotateCredential(account, status, refresh) {
  const wrap = h("span", { class: "actions" });
  const open = h("button", { type: "button" }, "Rotate key");
  open.addEventListener("click", () => {
    const field = h("input", { type: "password", class: "medium", autocomplete: "off", "aria-label": `New API key for ${account.provider}/${account.name}` });
    const save = action("Set", status, async () => {
      if (!field.value) throw new Error("Enter the new API key first.");
      await api("PATCH", `/admin/accounts/${account.id}`, { api_key: field.value });
      await refresh();
      status.replaceChildren(h("p", { class: "ok" }, `New key set for ${account.provider}/${account.name}.`));
    });
    wrap.replaceChildren(field, save);
    field.focus();
  });
  wrap.append(open);
  return wrap;
}

function modelForm(providerList, status, refresh) {
  const form = h(
    "form",
    { class: "card form-grid", id: "create-model" },
    h("h2", {}, "Add a model"),
    h("label", {}, "Public name", h("input", { name: "name", required: true, autocomplete: "off" })),
    h("label", {}, "Strategy", h("select", { name: "strategy" }, STRATEGIES.map((k) => h("option", { value: k }, k)))),
    h("label", {}, "Route: provider", h("select", { name: "provider", required: true }, providerList.map((p) => h("option", { value: p.name }, p.name)))),
    h("label", {}, "Route: upstream model", h("input", { name: "model", required: true, autocomplete: "off" })),
    h("label", {}, "Route: weight", h("input", { name: "weight", type: "number", min: 0, value: 1 })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Add model")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    status.replaceChildren();
    try {
      await api("POST", "/admin/models", {
        name: fields.get("name").trim(),
        strategy: fields.get("strategy"),
        routes: [{ provider: fields.get("provider"), model: fields.get("model").trim(), weight: Number(fields.get("weight") || 1) }],
      });
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function providerForm(status, refresh) {
  const form = h(
    "form",
    { class: "form-grid inline" },
    h("label", {}, "Name", h("input", { name: "name", required: true })),
    h("label", {}, "Kind", h("select", { name: "kind" }, ["openai", "anthropic", "gemini"].map((k) => h("option", { value: k }, k)))),
    h("label", {}, "Base URL", h("input", { name: "base_url", type: "url", required: true, placeholder: "https://api.openai.com/v1" })),
    h("label", {}, "Serves /responses (openai only)", h("input", { name: "responses", type: "checkbox" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Add provider")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    status.replaceChildren();
    try {
      await api("POST", "/admin/providers", {
        name: fields.get("name").trim(),
        kind: fields.get("kind"),
        base_url: fields.get("base_url").trim(),
        responses: fields.get("responses") === "on",
      });
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function accountForm(providerList, status, refresh) {
  const form = h(
    "form",
    { class: "form-grid inline" },
    h("label", {}, "Provider", h("select", { name: "provider", required: true }, providerList.map((p) => h("option", { value: p.name }, p.name)))),
    h("label", {}, "Name", h("input", { name: "name", required: true })),
    h("label", {}, "API key", h("input", { name: "api_key", type: "password", required: true, autocomplete: "off" })),
    h("label", {}, "Weight", h("input", { name: "weight", type: "number", min: 0, value: 1 })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Add account")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    status.replaceChildren();
    try {
      await api("POST", "/admin/accounts", { provider: fields.get("provider"), name: fields.get("name").trim(), api_key: fields.get("api_key"), weight: Number(fields.get("weight") || 1) });
      await refresh();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// ---------------------------------------------------------------- upstream health

function health(state) {
  if (state.healthy) return badge("healthy");
  return badge(state.cooldown_until ? `cooling down until ${shortTime(state.cooldown_until)}` : "unhealthy", "unhealthy");
}

export async function upstreams(root) {
  const body = h("div", { class: "stack" }, h("p", { class: "loading" }, "Loading upstream health…"));
  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Upstream health"), h("button", { type: "button", onclick: () => upstreams(root) }, "Refresh")), body);
  await guarded(body, async () => {
    const view = await get("/admin/upstreams");
    const routes = view.routes.map((r) =>
      h("tr", {}, h("td", {}, r.model), h("td", {}, r.provider), h("td", {}, r.upstream_model), h("td", { class: "num" }, r.weight), h("td", { class: "num" }, r.priority), h("td", {}, r.enabled ? health(r) : badge("disabled")), h("td", { class: "num" }, r.recent_errors)),
    );
    const accounts = view.accounts.map((a) =>
      h(
        "tr",
        {},
        h("td", {}, a.provider),
        h("td", {}, a.name),
        h("td", {}, h("code", {}, a.api_key_hint)),
        h("td", {}, a.enabled ? health(a) : badge("disabled")),
        h("td", { class: "num" }, a.recent_errors),
        h("td", {}, (a.model_cooldowns || []).map((c) => h("div", {}, `${c.upstream_model} until ${shortTime(c.cooldown_until)} (${c.recent_errors} errors)`))),
      ),
    );
    fill(body,
      h("section", { class: "card" }, h("h2", {}, "Routes"), routes.length ? table(["model", "provider", "upstream model", "weight", "priority", "health", "recent errors"], routes) : empty("No routes configured.")),
      h("section", { class: "card" }, h("h2", {}, "Accounts"), accounts.length ? table(["provider", "account", "key", "health", "recent errors", "model cooldowns"], accounts) : empty("No accounts configured.")),
    );
  });
}

// ---------------------------------------------------------------- request log

export async function logs(root) {
  const results = h("div", {}, h("p", { class: "loading" }, "Loading the request log…"));
  const detail = h("div", { "aria-live": "polite" });
  const pager = h("div", { class: "actions" });
  const cursors = [];
  const form = h(
    "form",
    { class: "card form-grid filters", id: "log-filters" },
    h("label", {}, "Key (name or id)", h("input", { name: "key", autocomplete: "off" })),
    h("label", {}, "Model", h("input", { name: "model", autocomplete: "off" })),
    h("label", {}, "Status", h("input", { name: "status", type: "number", min: 100, max: 599, inputmode: "numeric" })),
    h("label", {}, "From (UTC)", h("input", { name: "from", type: "datetime-local" })),
    h("label", {}, "To (UTC)", h("input", { name: "to", type: "datetime-local" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Filter")),
  );
  const filters = () => {
    const fields = new FormData(form);
    // A datetime-local value (minutes, or seconds) read as UTC, in RFC 3339.
    const time = (name) => {
      const value = fields.get(name);
      if (!value) return "";
      return `${value.length === 16 ? `${value}:00` : value.slice(0, 19)}Z`;
    };
    return { key: fields.get("key").trim(), model: fields.get("model").trim(), status: fields.get("status"), from: time("from"), to: time("to"), limit: 50 };
  };
  async function load(cursor) {
    await guarded(results, async () => {
      const page = await get(`/admin/logs${query({ ...filters(), cursor })}`);
      detail.replaceChildren();
      if (page.data.length === 0) {
        results.replaceChildren(empty("No requests match. Requests appear here once a client calls /v1 with a key."));
      } else {
        const rows = page.data.map((row) =>
          h(
            "tr",
            { class: row.status >= 400 ? "failed" : "" },
            h("td", {}, shortTime(row.at)),
            h("td", {}, badge(String(row.status), row.status >= 400 ? "unhealthy" : "healthy")),
            h("td", {}, row.model),
            h("td", {}, row.key ?? `#${row.key_id}`),
            h("td", {}, row.provider ? `${row.provider}/${row.account ?? "–"}` : "–"),
            h("td", { class: "num" }, `${row.latency_ms} ms`),
            h("td", { class: "num" }, formatNumber(row.prompt_tokens + row.completion_tokens)),
            h("td", {}, h("button", { type: "button", class: "quiet", onclick: () => detail.replaceChildren(logDetail(row)) }, "Details")),
          ),
        );
        results.replaceChildren(table(["finished", "status", "model", "key", "provider/account", "latency", "tokens", ""], rows));
      }
      fill(pager,
        cursors.length ? h("button", { type: "button", onclick: () => { cursors.pop(); load(cursors[cursors.length - 1]); } }, "Newer") : null,
        page.next_cursor !== null ? h("button", { type: "button", id: "older", onclick: () => { cursors.push(page.next_cursor); load(page.next_cursor); } }, "Older") : null,
      );
    });
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors.length = 0;
    load();
  });
  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Request log")), form, detail, h("section", { class: "card" }, results, pager));
  await load();
}

function logDetail(row) {
  const fields = [
    ["request id", row.request_id],
    ["finished", shortTime(row.at)],
    ["endpoint", `${row.endpoint}${row.stream ? " (stream)" : ""}`],
    ["model", row.model],
    ["key", row.key ?? `#${row.key_id}`],
    ["route", row.route_id ?? "–"],
    ["provider / account", row.provider ? `${row.provider} / ${row.account ?? "–"}` : "none reached"],
    ["status", row.status],
    ["attempts", row.attempts],
    ["latency", `${row.latency_ms} ms`],
    ["time to first byte", row.ttfb_ms === null ? "–" : `${row.ttfb_ms} ms`],
    ["tokens", `${row.prompt_tokens} prompt, ${row.completion_tokens} completion, ${row.cached_tokens} cached, ${row.reasoning_tokens} reasoning${row.estimated ? " (estimated)" : ""}`],
  ];
  return h(
    "section",
    { class: "card", id: "log-detail" },
    h("h2", {}, "Request ", h("code", {}, row.request_id)),
    h("dl", { class: "detail" }, fields.map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))])),
  );
}
