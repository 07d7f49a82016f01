// The console's pages. Each renders into the element it is given, from the admin API, and
// shows the API's errors where they happened. Text from the API is always set as text, never
// parsed as HTML.

import { api, get, query } from "./api.js";
import { barChart, formatNumber, formatUsd } from "./charts.js";

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

// Sends a form's change when it is submitted: `send` makes the API call with the form's
// fields and answers the message to show once the page is refreshed; an API error is shown in
// `status` instead.
function onSubmit(form, status, refresh, send) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.replaceChildren();
    try {
      const done = await send(new FormData(form));
      await refresh();
      if (done) status.replaceChildren(h("p", { class: "ok" }, done));
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  });
}

function table(headings, rows, caption) {
  // Each cell is labelled with its column, which a phone-width screen shows beside the value
  // (rows become cards there, see app.css).
  for (const row of rows) {
    [...row.children].forEach((cell, index) => {
      if (!cell.hasAttribute("colspan") && headings[index]) cell.dataset.label = headings[index];
    });
  }
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
// What the busiest lists rank by: "requests" or "cost".
let dashboardRank = "requests";

// A line of counters with nothing counted yet.
const zero = () => ({ requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0, estimated_cost_usd: 0 });

function totals(lines) {
  const sum = zero();
  for (const line of lines) {
    for (const field of Object.keys(sum)) sum[field] += line[field] || 0;
  }
  return sum;
}

// A cost as a table cell: the dollars, with the estimated part (usage llmgate counted itself
// because the upstream reported none) marked and spelled out on hover.
function costCell(line) {
  const estimated = line.estimated_cost_usd || 0;
  const title = estimated > 0 ? `${formatUsd(line.cost_usd)}, of which ${formatUsd(estimated)} estimated (the upstream reported no usage; llmgate counted the tokens)` : `${formatUsd(line.cost_usd)} at the routes' prices`;
  return h("td", { class: "num", title }, formatUsd(line.cost_usd), estimated > 0 ? h("span", { class: "est", "aria-label": "partly estimated" }, " est.") : null);
}

function stat(label, value, note) {
  return h("div", { class: "stat card" }, h("span", { class: "label" }, label), h("strong", {}, value), note ? h("span", { class: "note" }, note) : null);
}

function topList(title, lines, nameOf, none = "No requests in this range.") {
  const rank = dashboardRank === "cost" ? (line) => line.cost_usd : (line) => line.requests;
  const sorted = [...lines].sort((a, b) => rank(b) - rank(a) || b.requests - a.requests).slice(0, 5);
  const rows = sorted.map((line) =>
    h("tr", {}, h("td", {}, nameOf(line)), h("td", { class: "num" }, formatNumber(line.requests)), h("td", { class: "num" }, formatNumber(line.errors)), h("td", { class: "num" }, formatNumber(line.prompt_tokens + line.completion_tokens)), costCell(line)),
  );
  const list = rows.length ? table(["name", "requests", "errors", "tokens", "cost"], rows) : empty(none);
  // Five short columns fit a phone: this table stays a table there.
  if (rows.length) list.classList.add("compact");
  return h("section", { class: "card" }, h("h2", {}, title), list);
}

// Usage of the last hour, from the request log (the rollups are by day): its newest 1000 rows.
async function lastHour() {
  const from = new Date(Date.now() - 3600000).toISOString().replace(/\.\d+Z$/, "Z");
  const page = await get(`/admin/logs${query({ from, limit: 1000 })}`);
  const rows = page.data;
  const buckets = new Map();
  const keys = new Map();
  const models = new Map();
  // One request log row counted into a line of totals.
  const count = (line, row) => {
    line.requests += 1;
    line.errors += row.status >= 400 ? 1 : 0;
    line.prompt_tokens += row.prompt_tokens;
    line.completion_tokens += row.completion_tokens;
    line.cost_usd += row.cost_usd || 0;
    line.estimated_cost_usd += row.estimated ? row.cost_usd || 0 : 0;
  };
  const add = (map, name, row) => {
    const line = map.get(name) || { name, ...zero() };
    count(line, row);
    map.set(name, line);
  };
  const now = Date.now();
  for (let i = 11; i >= 0; i -= 1) {
    const start = new Date(now - (i + 1) * 300000);
    buckets.set(i, { name: start.toISOString().slice(11, 16), ...zero() });
  }
  for (const row of rows) {
    const index = Math.min(11, Math.floor((now - new Date(row.at).getTime()) / 300000));
    const bucket = buckets.get(index);
    if (bucket) count(bucket, row);
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
    const line = lines.get(day) || zero();
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
    // The routes' prices come from the in-memory catalog: free to ask on every view.
    const [data, upstreamView] = await Promise.all([dashboardRange === "hour" ? lastHour() : rollups(dashboardRange), get("/admin/upstreams")]);
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
    const costPoints = data.series.map((line) => ({
      label: line.label,
      value: line.cost_usd,
      part: line.estimated_cost_usd,
      title: `${line.label}: ${formatUsd(line.cost_usd)}${line.estimated_cost_usd > 0 ? `, of which ${formatUsd(line.estimated_cost_usd)} estimated` : ""} (${line.requests.toLocaleString("en-US")} requests)`,
    }));
    const unpriced = upstreamView.routes.filter((r) => r.enabled && !r.priced);
    const rankPicker = h(
      "div",
      { class: "segmented", role: "group", "aria-label": "Rank the busiest lists by" },
      [["requests", "By requests"], ["cost", "By cost"]].map(([id, label]) =>
        h("button", {
          type: "button",
          "aria-pressed": id === dashboardRank ? "true" : "false",
          onclick: () => {
            dashboardRank = id;
            dashboard(root);
          },
        }, label),
      ),
    );
    fill(body,
      h(
        "div",
        { class: "stats" },
        stat("Requests", formatNumber(sum.requests)),
        stat("Errors", formatNumber(sum.errors), errorRate),
        stat("Tokens", formatNumber(sum.prompt_tokens + sum.completion_tokens), `${formatNumber(sum.prompt_tokens)} prompt · ${formatNumber(sum.completion_tokens)} completion`),
        stat("Cost", formatUsd(sum.cost_usd), sum.estimated_cost_usd > 0 ? `incl. ${formatUsd(sum.estimated_cost_usd)} estimated` : "at the routes' prices"),
        stat("Latency p50 / p95", `${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 95))}`, latencyNote),
        stat("Time to first byte p50 / p95", `${ms(percentile(ttfbs, 50))} / ${ms(percentile(ttfbs, 95))}`, latencyNote),
      ),
      data.partial ? h("p", { class: "hint" }, "More than 1000 requests in the last hour: the figures cover the newest 1000.") : null,
      h("section", { class: "card" }, h("h2", {}, "Requests"), barChart(points, { name: "requests", partName: "errors", width })),
      h("section", { class: "card" }, h("h2", {}, "Tokens"), barChart(tokenPoints, { name: "prompt", partName: "completion", partClass: "part alt", width })),
      h(
        "section",
        { class: "card", id: "cost-chart" },
        h("h2", {}, "Cost (USD)"),
        unpriced.length ? unpricedHint(unpriced) : null,
        barChart(costPoints, { name: "cost", partName: "estimated", partClass: "part est", width, format: formatUsd }),
      ),
      h("div", { class: "page-head" }, h("h2", {}, dashboardRank === "cost" ? "Biggest spenders" : "Busiest", h("span", { class: "note" }, ` · ${RANGES.find((r) => r.id === dashboardRange).label.toLowerCase()}`)), rankPicker),
      h("div", { class: "columns" }, topList("Keys", data.keys, (l) => l.name), topList("Models", data.models, (l) => l.name), topList("Providers / accounts", data.accounts, (l) => l.name, "No request reached a provider account in this range (keyless providers, like the demo, have none).")),
    );
  });
  root.dataset.ready = "dashboard";
}

// Routes with no price cost $0 and charge no dollar budget: say which, and where to set one.
function unpricedHint(routes) {
  const names = routes.slice(0, 4).map((r) => `${r.model} → ${r.provider}/${r.upstream_model}`).join(", ");
  const more = routes.length > 4 ? ` and ${routes.length - 4} more` : "";
  return h(
    "p",
    { class: "hint warn", role: "note" },
    `${routes.length === 1 ? "1 route has" : `${routes.length} routes have`} no price (${names}${more}), so their requests count as $0 and no dollar budget is charged for them. Set an input and an output price on the route under `,
    h("a", { href: "#/providers" }, "Providers & models"),
    " (Prices & limits), or input_price and output_price in the config file.",
  );
}

// ---------------------------------------------------------------- keys

function numberOrNull(text) {
  const trimmed = text.trim();
  return trimmed === "" ? undefined : Number(trimmed);
}

const WINDOWS = ["daily", "weekly", "monthly"];

// The UTC day a budget window began, as the gateway counts it: today, this week's Monday,
// the 1st of this month; a budget without a window counts from the start.
function windowStart(window) {
  const now = new Date();
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  if (window === "daily") return day.toISOString().slice(0, 10);
  if (window === "weekly") day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7));
  else if (window === "monthly") day.setUTCDate(1);
  else return "1970-01-01";
  return day.toISOString().slice(0, 10);
}

const WINDOW_WORDS = { daily: "today", weekly: "this week", monthly: "this month" };

// The budget fields of the key forms; `key` fills them for an edit.
function budgetFields(key = {}) {
  return [
    h("label", {}, "Budget in USD (per window)", h("input", { name: "budget_usd", type: "number", min: 0, step: "0.01", inputmode: "decimal", value: key.budget_usd ?? "", placeholder: "none" })),
    h("label", {}, "Budget in tokens (per window)", h("input", { name: "budget_tokens", type: "number", min: 1, inputmode: "numeric", value: key.budget_tokens ?? "", placeholder: "none" })),
    h(
      "label",
      {},
      "Budget window (UTC)",
      h("select", { name: "budget_window" }, h("option", { value: "" }, "none (all time)"), WINDOWS.map((w) => h("option", { value: w, selected: key.budget_window === w }, w))),
    ),
  ];
}

// What a key spent in its budget's window against the budget, with a meter.
function budgetCell(key, spent) {
  if (key.budget_usd == null && key.budget_tokens == null) return h("td", {}, h("span", { class: "note" }, "none"));
  const when = WINDOW_WORDS[key.budget_window] || "since created";
  const parts = [];
  let share = 0;
  if (key.budget_usd != null) {
    const cost = spent?.cost_usd ?? 0;
    parts.push(`${formatUsd(cost)} of ${formatUsd(key.budget_usd)}`);
    share = Math.max(share, key.budget_usd > 0 ? cost / key.budget_usd : 1);
  }
  if (key.budget_tokens != null) {
    const tokens = (spent?.prompt_tokens ?? 0) + (spent?.completion_tokens ?? 0);
    parts.push(`${formatNumber(tokens)} of ${formatNumber(key.budget_tokens)} tokens`);
    share = Math.max(share, tokens / key.budget_tokens);
  }
  const percent = Math.min(100, Math.round(share * 100));
  return h(
    "td",
    { class: "budget" },
    h("div", {}, parts.join(" · ")),
    h("meter", { min: 0, max: 100, low: 70, high: 90, optimum: 0, value: percent, "aria-label": `${percent}% of the budget spent ${when}`, title: `${percent}% spent ${when}` }),
    h("span", { class: "note" }, ` ${when}`),
  );
}

// Each budgeted key's spend since its window began: one usage query per distinct start day.
async function spendByKey(keyList) {
  const starts = new Set(keyList.filter((k) => k.budget_usd != null || k.budget_tokens != null).map((k) => windowStart(k.budget_window)));
  const answers = await Promise.all([...starts].map((from) => get(`/admin/usage${query({ from, to: today(), group_by: "key" })}`).then((report) => [from, report])));
  const byStart = new Map(answers.map(([from, report]) => [from, new Map(report.data.map((line) => [line.key_id, line]))]));
  return (key) => byStart.get(windowStart(key.budget_window))?.get(key.id);
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
    budgetFields(),
    h("label", {}, "Expires on (UTC)", h("input", { name: "expires_at", type: "date" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Create key")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const body = { name: fields.get("name").trim() };
    const models = fields.get("models").split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    for (const name of ["rpm", "tpm", "budget_usd", "budget_tokens"]) {
      const value = numberOrNull(fields.get(name));
      if (value !== undefined) body[name] = value;
    }
    if (fields.get("budget_window")) body.budget_window = fields.get("budget_window");
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
      const spentBy = await spendByKey(page.data);
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
        const limits = [key.rpm ? `${key.rpm} rpm` : null, key.tpm ? `${key.tpm} tpm` : null].filter(Boolean);
        const used = usageOf.get(key.id) || zero();
        return h(
          "tr",
          { "data-key": key.name },
          h("td", {}, key.name),
          h("td", {}, h("code", {}, `${key.prefix}…`)),
          h("td", {}, badge(key.status)),
          h("td", {}, key.models ? key.models.join(", ") : "all"),
          h("td", {}, limits.join(", ") || "none"),
          budgetCell(key, spentBy(key)),
          h("td", {}, key.expires_at ? shortTime(key.expires_at) : "never"),
          h("td", { class: "num" }, formatNumber(used.requests)),
          h("td", { class: "num" }, formatNumber(used.prompt_tokens + used.completion_tokens)),
          costCell(used),
          h("td", {}, actions),
        );
      });
      list.replaceChildren(table(["name", "key", "status", "models", "rate limits", "budget: spent", "expires", "requests (30 d)", "tokens (30 d)", "cost (30 d)", ""], rows));
    });
  }

  root.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Keys")), created, status, h("section", { class: "card" }, list), form);
  await refresh();
}

// An inline form under a key's row: its name, models, limits and expiry. An emptied field is
// sent as null, which clears the limit.
function editKey(row, key, status, refresh) {
  const form = h(
    "form",
    { class: "form-grid", "aria-label": `Edit key ${key.name}` },
    h("label", {}, "Name", h("input", { name: "name", value: key.name, required: true })),
    h("label", {}, "Models (empty: all)", h("input", { name: "models", value: key.models ? key.models.join(", ") : "" })),
    h("label", {}, "Requests per minute", h("input", { name: "rpm", type: "number", min: 1, value: key.rpm ?? "" })),
    h("label", {}, "Tokens per minute", h("input", { name: "tpm", type: "number", min: 1, value: key.tpm ?? "" })),
    budgetFields(key),
    h("label", {}, "Expires on (UTC)", h("input", { name: "expires_at", type: "date", value: key.expires_at ? key.expires_at.slice(0, 10) : "" })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Save"), h("button", { type: "button", class: "quiet", onclick: (event) => event.target.closest("tr").remove() }, "Cancel")),
  );
  onSubmit(form, status, refresh, async (fields) => {
    const models = fields.get("models").split(",").map((m) => m.trim()).filter(Boolean);
    const patch = {
      name: fields.get("name").trim(),
      models: models.length ? models : null,
      rpm: numberOrNull(fields.get("rpm")) ?? null,
      tpm: numberOrNull(fields.get("tpm")) ?? null,
      budget_usd: numberOrNull(fields.get("budget_usd")) ?? null,
      budget_tokens: numberOrNull(fields.get("budget_tokens")) ?? null,
      budget_window: fields.get("budget_window") || null,
      expires_at: fields.get("expires_at") ? `${fields.get("expires_at")}T23:59:59Z` : null,
    };
    await api("PATCH", `/admin/keys/${key.id}`, patch);
    return `Saved key ${patch.name}.`;
  });
  toggleEditor(row, form, 11);
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
          h("td", {}, providerSettings(p)),
          h("td", {}, p.source),
          h("td", {}, h("div", { class: "actions" }, action("Save", status, async () => {
            const changes = { base_url: url.value.trim() };
            if (p.kind === "openai") changes.responses = responses.checked;
            await api("PATCH", `/admin/providers/${p.id}`, changes);
            await refresh();
            status.replaceChildren(h("p", { class: "ok" }, `Saved provider ${p.name}.`));
          }, { "aria-label": `Save provider ${p.name}` }),
          h("button", { type: "button", "aria-label": `Settings of provider ${p.name}`, onclick: (event) => editProvider(event.target.closest("tr"), p, status, refresh) }, "Settings"))),
        );
      });
      const kindOf = new Map(providerPage.data.map((p) => [p.name, p.kind]));
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
            rotateCredential(a, kindOf.get(a.provider), status, refresh),
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
                ["provider", "upstream model", "weight", "priority", "price per 1M tokens (in / out)", "state", ""],
                m.routes.map((r) => routeRow(r, status, refresh)),
              )
            : empty("No routes: requests for this model fail until one is added."),
        ),
      );
      fill(body,
        h("section", { class: "card" }, h("h2", {}, "Providers"), providerRows.length ? table(["name", "kind", "base URL", "serves /responses", "settings", "source", ""], providerRows) : empty("No providers yet — add one below."), providerForm(status, refresh)),
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
    h("td", {}, route.priced ? `${formatUsd(route.effective.input_price)} / ${formatUsd(route.effective.output_price)}` : badge("unpriced", "unpriced"), hasOverrides(route) ? h("span", { class: "note" }, " (set on the route)") : null),
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
        h("button", { type: "button", "aria-label": `Prices and limits of ${route.provider}/${route.model}`, onclick: (event) => editTerms(event.target.closest("tr"), route, status, refresh) }, "Prices & limits"),
      ),
    ),
  );
}

// A route's prices (USD per million tokens) and limits (tokens), under the API's names.
const TERMS = [
  ["input_price", "Input price", "$ per 1M"],
  ["output_price", "Output price", "$ per 1M"],
  ["cached_input_price", "Cached input price", "$ per 1M"],
  ["cache_write_price", "Cache write price", "$ per 1M"],
  ["max_output_tokens", "Most output tokens", "tokens"],
  ["context_window", "Context window", "tokens"],
];

const hasOverrides = (route) => TERMS.some(([field]) => route[field] !== null && route[field] !== undefined);

function termText(field, value) {
  if (value === null || value === undefined) return "none";
  return field.endsWith("_price") ? `${formatUsd(value)} per 1M` : `${formatNumber(value)} tokens`;
}

// Toggles editor rows (a key's, a route's, a provider's) under a table row: a second press
// closes the one open.
function toggleEditor(row, form, colspan) {
  if (row.nextElementSibling && row.nextElementSibling.classList.contains("editor")) {
    row.nextElementSibling.remove();
    return null;
  }
  const editor = h("tr", { class: "editor" }, h("td", { colspan }, form));
  row.after(editor);
  const first = form.querySelector("input, select, textarea");
  if (first) first.focus();
  return editor;
}

// An inline form under a route's row: each price and limit the route sets itself. An empty
// field takes the figure from the built-in catalog (shown beside it, as in effect now).
function editTerms(row, route, status, refresh) {
  const name = `${route.provider}/${route.model}`;
  const form = h(
    "form",
    { class: "form-grid", "aria-label": `Prices and limits of ${name}` },
    h("p", { class: "hint wide-cell" }, "Empty: the built-in catalog's figure for ", h("code", {}, route.model), ". A route is priced when it has an input and an output price; cached input and cache writes are billed at the input price unless priced."),
    TERMS.map(([field, label, unit]) =>
      h(
        "label",
        {},
        `${label} (${unit})`,
        h("input", { name: field, type: "number", min: 0, step: field.endsWith("_price") ? "any" : 1, inputmode: "decimal", value: route[field] ?? "", placeholder: route.effective[field] ?? "none" }),
        h("span", { class: "note" }, `in effect: ${termText(field, route.effective[field])}`),
      ),
    ),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Save prices"), h("button", { type: "button", class: "quiet", onclick: (event) => event.target.closest("tr").remove() }, "Cancel")),
  );
  onSubmit(form, status, refresh, async (fields) => {
    const patch = {};
    for (const [field] of TERMS) patch[field] = numberOrNull(fields.get(field)) ?? null;
    await api("PATCH", `/admin/routes/${route.id}`, patch);
    return `Saved the prices and limits of ${name}.`;
  });
  toggleEditor(row, form, 7);
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

// "Rotate key": an inline field for the account's new credential (write-only, like the API):
// an API key, or for Vertex AI a service account's JSON key file.
function rotateCredential(account, kind, status, refresh) {
  const wrap = h("span", { class: "actions" });
  const vertex = kind === "vertex";
  const open = h("button", { type: "button", "aria-label": `Rotate the credential of ${account.provider}/${account.name}` }, vertex ? "Rotate service account" : "Rotate key");
  open.addEventListener("click", () => {
    const field = vertex
      ? h("textarea", { rows: 4, class: "medium", autocomplete: "off", spellcheck: "false", placeholder: '{"type": "service_account", …}', "aria-label": `New service-account JSON for ${account.provider}/${account.name}` })
      : h("input", { type: "password", class: "medium", autocomplete: "off", "aria-label": `New API key for ${account.provider}/${account.name}` });
    const save = action("Set", status, async () => {
      if (!field.value.trim()) throw new Error(vertex ? "Paste the service account's JSON key first." : "Enter the new API key first.");
      await api("PATCH", `/admin/accounts/${account.id}`, vertex ? { service_account_json: field.value } : { api_key: field.value });
      await refresh();
      status.replaceChildren(h("p", { class: "ok" }, `New ${vertex ? "service account" : "key"} set for ${account.provider}/${account.name}.`));
    });
    wrap.replaceChildren(field, save);
    field.focus();
  });
  wrap.append(open);
  return wrap;
}

const KINDS = ["openai", "anthropic", "gemini", "azure", "vertex"];

// Where each kind usually lives, as the base URL field's example.
const BASE_URLS = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com/v1",
  gemini: "https://generativelanguage.googleapis.com/v1beta",
  azure: "https://my-resource.openai.azure.com/openai",
  vertex: "optional: https://{region}-aiplatform.googleapis.com/v1",
};

// A provider's kind-specific settings and headers, in a table cell.
function providerSettings(p) {
  const parts = [];
  if (p.api_version) parts.push(`api-version ${p.api_version}`);
  if (p.project) parts.push(`project ${p.project}`);
  if (p.region) parts.push(`region ${p.region}`);
  const headers = Object.keys(p.headers || {});
  if (headers.length) parts.push(`headers: ${headers.join(", ")}`);
  return parts.length ? parts.join(" · ") : h("span", { class: "note" }, "–");
}

// Rows of extra headers (name, value) with add and remove buttons; `read()` answers the map.
function headerRows(initial = {}) {
  const list = h("div", { class: "header-rows" });
  const add = (name = "", value = "") => {
    const row = h(
      "div",
      { class: "header-row" },
      h("input", { class: "header-name", value: name, placeholder: "x-team", autocomplete: "off", "aria-label": "Header name" }),
      h("input", { class: "header-value", value, placeholder: "search", autocomplete: "off", "aria-label": "Header value" }),
    );
    row.append(h("button", { type: "button", class: "quiet", "aria-label": "Remove this header", onclick: () => row.remove() }, "Remove"));
    list.append(row);
    return row;
  };
  for (const [name, value] of Object.entries(initial)) add(name, value);
  const element = h(
    "fieldset",
    { class: "headers wide-cell" },
    h("legend", {}, "Extra headers sent upstream (optional)"),
    list,
    h("button", { type: "button", class: "quiet", onclick: () => add().querySelector("input").focus() }, "Add header"),
  );
  const read = () => {
    const headers = {};
    for (const row of list.children) {
      const name = row.querySelector(".header-name").value.trim();
      if (name) headers[name] = row.querySelector(".header-value").value.trim();
    }
    return headers;
  };
  return { element, read };
}

// The settings only some kinds take, each shown for its kinds alone.
function cloudFields(provider = {}) {
  return [
    h("label", { "data-kinds": "azure" }, "API version (azure)", h("input", { name: "api_version", value: provider.api_version ?? "", placeholder: "2024-10-21", autocomplete: "off" })),
    h("label", { "data-kinds": "vertex" }, "Project (vertex)", h("input", { name: "project", value: provider.project ?? "", placeholder: "my-project", autocomplete: "off" })),
    h("label", { "data-kinds": "vertex" }, "Region (vertex)", h("input", { name: "region", value: provider.region ?? "", placeholder: "us-central1 or global", autocomplete: "off" })),
  ];
}

// Shows a form's fields for `kind` only, and requires what that kind needs.
function showKind(form, kind) {
  for (const field of form.querySelectorAll("[data-kinds]")) {
    const shown = field.dataset.kinds.split(" ").includes(kind);
    field.hidden = !shown;
    const input = field.querySelector("input");
    if (input && input.type !== "checkbox") input.required = shown;
    if (!shown && input && input.type === "checkbox") input.checked = false;
  }
  const url = form.querySelector('input[name="base_url"]');
  if (url) {
    url.required = kind !== "vertex";
    url.placeholder = BASE_URLS[kind] || "";
  }
}

// The kind-specific settings of a form, for the API: empty ones left out (or, for an edit,
// sent as null, which removes them).
function cloudValues(fields, kind, forEdit) {
  const values = {};
  const wanted = { api_version: kind === "azure", project: kind === "vertex", region: kind === "vertex" };
  for (const [name, used] of Object.entries(wanted)) {
    const value = (fields.get(name) || "").trim();
    if (used && value) values[name] = value;
    else if (forEdit) values[name] = null;
  }
  return values;
}

// An inline form under a provider's row: its kind's settings and its extra headers.
function editProvider(row, provider, status, refresh) {
  const headers = headerRows(provider.headers);
  const form = h(
    "form",
    { class: "form-grid", "aria-label": `Settings of provider ${provider.name}` },
    cloudFields(provider),
    headers.element,
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Save settings"), h("button", { type: "button", class: "quiet", onclick: (event) => event.target.closest("tr").remove() }, "Cancel")),
  );
  showKind(form, provider.kind);
  onSubmit(form, status, refresh, async (fields) => {
    await api("PATCH", `/admin/providers/${provider.id}`, { ...cloudValues(fields, provider.kind, true), headers: headers.read() });
    return `Saved provider ${provider.name}.`;
  });
  toggleEditor(row, form, 7);
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
  onSubmit(form, status, refresh, async (fields) => {
    await api("POST", "/admin/models", {
      name: fields.get("name").trim(),
      strategy: fields.get("strategy"),
      routes: [{ provider: fields.get("provider"), model: fields.get("model").trim(), weight: Number(fields.get("weight") || 1) }],
    });
  });
  return form;
}

function providerForm(status, refresh) {
  const kind = h("select", { name: "kind" }, KINDS.map((k) => h("option", { value: k }, k)));
  const headers = headerRows();
  const form = h(
    "form",
    { class: "form-grid inline", id: "create-provider", "aria-label": "Add a provider" },
    h("h3", {}, "Add a provider"),
    h("label", {}, "Name", h("input", { name: "name", required: true, autocomplete: "off" })),
    h("label", {}, "Kind", kind),
    h("label", {}, "Base URL", h("input", { name: "base_url", type: "url", required: true, placeholder: BASE_URLS.openai })),
    cloudFields(),
    h("label", { "data-kinds": "openai", class: "check" }, h("input", { name: "responses", type: "checkbox" }), "Serves /responses itself (forwarded, not translated)"),
    headers.element,
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Add provider")),
  );
  kind.addEventListener("change", () => showKind(form, kind.value));
  showKind(form, kind.value);
  onSubmit(form, status, refresh, async (fields) => {
    const body = {
      name: fields.get("name").trim(),
      kind: kind.value,
      headers: headers.read(),
      ...cloudValues(fields, kind.value, false),
    };
    const url = fields.get("base_url").trim();
    if (url) body.base_url = url;
    if (kind.value === "openai") body.responses = fields.get("responses") === "on";
    await api("POST", "/admin/providers", body);
    return `Added provider ${body.name}: add an account for its credential, then route a model to it.`;
  });
  return form;
}

// A new account's credential follows its provider's kind: a service account's JSON key for
// Vertex AI, an API key otherwise. Both are write-only.
function accountForm(providerList, status, refresh) {
  const provider = h("select", { name: "provider", required: true }, providerList.map((p) => h("option", { value: p.name }, `${p.name} (${p.kind})`)));
  const kindOf = new Map(providerList.map((p) => [p.name, p.kind]));
  const form = h(
    "form",
    { class: "form-grid inline", id: "create-account", "aria-label": "Add an account" },
    h("h3", {}, "Add an account"),
    h("label", {}, "Provider", provider),
    h("label", {}, "Name", h("input", { name: "name", required: true, autocomplete: "off" })),
    h("label", { "data-kinds": "openai anthropic gemini azure" }, "API key", h("input", { name: "api_key", type: "password", autocomplete: "off" })),
    h("label", { "data-kinds": "vertex", class: "wide-cell" }, "Service account JSON key (write-only)", h("textarea", { name: "service_account_json", rows: 5, autocomplete: "off", spellcheck: "false", placeholder: '{"type": "service_account", "client_email": …, "private_key": …}' })),
    h("label", {}, "Weight", h("input", { name: "weight", type: "number", min: 0, value: 1 })),
    h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Add account")),
  );
  const sync = () => {
    showKind(form, kindOf.get(provider.value));
    form.querySelector("textarea").required = kindOf.get(provider.value) === "vertex";
  };
  provider.addEventListener("change", sync);
  sync();
  onSubmit(form, status, refresh, async (fields) => {
    const body = { provider: fields.get("provider"), name: fields.get("name").trim(), weight: Number(fields.get("weight") || 1) };
    if (kindOf.get(body.provider) === "vertex") body.service_account_json = fields.get("service_account_json");
    else body.api_key = fields.get("api_key");
    await api("POST", "/admin/accounts", body);
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
      h("tr", {}, h("td", {}, r.model), h("td", {}, r.provider), h("td", {}, r.upstream_model), h("td", { class: "num" }, r.weight), h("td", { class: "num" }, r.priority), h("td", {}, r.priced ? badge("priced", "enabled") : badge("unpriced", "unpriced")), h("td", {}, r.enabled ? health(r) : badge("disabled")), h("td", { class: "num" }, r.recent_errors)),
    );
    const unpriced = view.routes.filter((r) => r.enabled && !r.priced);
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
      h("section", { class: "card" }, h("h2", {}, "Routes"), unpriced.length ? unpricedHint(unpriced) : null, routes.length ? table(["model", "provider", "upstream model", "weight", "priority", "price", "health", "recent errors"], routes) : empty("No routes configured.")),
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
            costCell({ cost_usd: row.cost_usd, estimated_cost_usd: row.estimated ? row.cost_usd : 0 }),
            h("td", {}, h("button", { type: "button", class: "quiet", "aria-label": `Details of request ${row.request_id}`, onclick: () => {
              detail.replaceChildren(logDetail(row));
              detail.scrollIntoView({ block: "nearest" });
            } }, "Details")),
          ),
        );
        results.replaceChildren(table(["finished", "status", "model", "key", "provider/account", "latency", "tokens", "cost", ""], rows));
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
    ["cost", `${formatUsd(row.cost_usd)}${row.estimated ? " (estimated: the upstream reported no usage, llmgate counted the tokens)" : ""}${row.cost_usd === 0 && row.status < 400 ? " (an unpriced route costs $0)" : ""}`],
  ];
  return h(
    "section",
    { class: "card", id: "log-detail" },
    h("h2", {}, "Request ", h("code", {}, row.request_id)),
    h("dl", { class: "detail" }, fields.map(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))])),
  );
}
