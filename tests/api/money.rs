//! Money: what each request costs at the prices of the route that served it (in the request
//! log, the rollups, `/admin/usage`, `/admin/logs` and the metrics), route prices from the
//! built-in catalog or from overrides in the file and the admin API, unpriced routes flagged,
//! and dollar budgets per key (admit, settle, refuse, race, restart).

use std::time::Duration;

use llmgate::auth::NewKey;
use llmgate::mock::{self, MockConfig};
use llmgate::pricing::Nanodollars;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    Serve, TestApp, TestOptions, UPSTREAM_KEY, bind, config_text, eventually, spawn_with,
};

const CLAUDE_KEY: &str = "sk-ant-upstream-money-0001";
const SECOND_KEY: &str = "sk-upstream-second-account-2";
const GEMINI_KEY: &str = "gm-upstream-money-0003";

/// A model on the default `mock` provider with prices of its own: 2.00 in, 0.50 cached, 8.00
/// out per million tokens.
const PRICED_CHAT: &str = r#"
[[models]]
name = "priced-chat"
  [[models.routes]]
  provider = "mock"
  model = "house-model"
  input_price = 2.00
  cached_input_price = 0.50
  output_price = 8
  max_output_tokens = 4096
"#;

/// Besides the default `gpt-test` (route `mock-model`, which no catalog knows and which sets
/// no price): `priced-chat` (its own prices: 2.00 in, 0.50 cached, 8.00 out per million),
/// `claude` (upstream `claude-sonnet-4-5` on an anthropic provider, the built-in catalog's
/// prices: 3.00 in, 0.30 cached, 3.75 cache write, 15.00 out), `emb` (the catalog's
/// `text-embedding-3-small`, 0.02 in), `gemini` (the catalog's `gemini-2.5-flash`: 0.30 in,
/// 0.03 cached, 2.50 out) and `failover` (a cheap route first, a dear one on another provider
/// second).
fn money_config() -> String {
    format!(
        r#"
[[providers]]
name = "anth"
kind = "anthropic"
base_url = "{{mock}}"
  [[providers.accounts]]
  name = "c1"
  api_key = "{CLAUDE_KEY}"

[[providers]]
name = "gem"
kind = "gemini"
base_url = "{{mock_gemini}}"
  [[providers.accounts]]
  name = "g1"
  api_key = "{GEMINI_KEY}"

[[providers]]
name = "second"
kind = "openai"
base_url = "{{mock}}"
  [[providers.accounts]]
  name = "s1"
  api_key = "{SECOND_KEY}"

{PRICED_CHAT}

[[models]]
name = "claude"
  [[models.routes]]
  provider = "anth"
  model = "claude-sonnet-4-5"

[[models]]
name = "gemini"
  [[models.routes]]
  provider = "gem"
  model = "gemini-2.5-flash"

[[models]]
name = "emb"
  [[models.routes]]
  provider = "mock"
  model = "text-embedding-3-small"

[[models]]
name = "failover"
max_attempts = 2
  [[models.routes]]
  provider = "mock"
  model = "cheap-model"
  input_price = 1
  output_price = 1
  [[models.routes]]
  provider = "second"
  model = "dear-model"
  input_price = 10
  output_price = 20
  priority = 1
"#
    )
}

async fn spawn_money() -> TestApp {
    spawn_with(TestOptions {
        extra_config: money_config(),
        ..TestOptions::default()
    })
    .await
}

async fn key(app: &TestApp, name: &str) -> String {
    app.create_key(NewKey {
        name: name.into(),
        ..NewKey::default()
    })
    .await
}

/// Sends `body` to `path` with `key`, reads the whole answer (a stream to its end), and
/// returns its status and text.
async fn send(app: &TestApp, key: &str, path: &str, body: &Value) -> (u16, String) {
    let response = app
        .client
        .post(app.url(path))
        .bearer_auth(key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn admin_get(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.admin(Method::GET, path, token).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// The element of the JSON array `list` whose `field` is `value`.
fn find<'v>(list: &'v Value, field: &str, value: &str) -> &'v Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|item| item[field] == value)
        .unwrap_or_else(|| panic!("no {field} {value} in {list}"))
}

/// `cost_usd` of the `/admin/usage?group_by=key` line of the key named `name`.
async fn key_cost(app: &TestApp, token: &str, name: &str) -> Option<f64> {
    let usage = admin_get(app, token, "/admin/usage?group_by=key").await;
    find(&usage["data"], "key", name)["cost_usd"].as_f64()
}

/// USD as `/admin/usage` and `/admin/logs` show an amount of nano-dollars.
fn usd(nanos: u64) -> f64 {
    Nanodollars(nanos).usd()
}

/// Tokens × micro-dollars per million tokens, summed: pico-dollars. Every figure in these
/// tests is a whole number of nano-dollars, so no rounding is involved.
fn nanos(picodollars: u64) -> u64 {
    assert_eq!(picodollars % 1000, 0, "a hand-computed figure is exact");
    picodollars / 1000
}

#[tokio::test]
async fn admin_usage_gives_the_exact_cost_of_a_mixed_workload_by_key_model_and_day() {
    let app = spawn_money().await;
    let alpha = key(&app, "alpha").await;
    let beta = key(&app, "beta").await;
    let chat_to = |model: &str, text: &str, stream: bool, knobs: Value| {
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}],
               "mock": knobs})
    };
    let chat = |text: &str, knobs: Value| chat_to("priced-chat", text, false, knobs);
    let messages = |text: &str, stream: bool, knobs: Value| {
        json!({"model": "claude", "max_tokens": 100, "stream": stream,
               "messages": [{"role": "user", "content": text}], "mock": knobs})
    };
    let workload = [
        // Chat: 4 prompt tokens, 1 of them cached; 5 completion tokens.
        (
            &alpha,
            "/v1/chat/completions",
            chat(
                "one two three four",
                json!({"cached_tokens": 1, "chunks": 5}),
            ),
        ),
        // A stream: 2 prompt, 3 completion (llmgate asks the upstream for the usage chunk).
        (&alpha, "/v1/chat/completions", {
            let mut body = chat("a b", json!({"chunks": 3}));
            body["stream"] = json!(true);
            body
        }),
        // Messages to Anthropic: 6 prompt tokens, 2 read from the cache, 3 written to it
        // (Anthropic's input_tokens is the 1 left); 4 completion.
        (
            &alpha,
            "/v1/messages",
            messages(
                "m1 m2 m3 m4 m5 m6",
                false,
                json!({"cached_tokens": 2, "cache_write_tokens": 3, "chunks": 4}),
            ),
        ),
        // Streamed: 2 prompt, 1 cached; 2 completion.
        (
            &alpha,
            "/v1/messages",
            messages("s1 s2", true, json!({"cached_tokens": 1, "chunks": 2})),
        ),
        // Chat translated to Anthropic: 4 prompt, 1 read from the cache, 2 written; 3 completion.
        (
            &alpha,
            "/v1/chat/completions",
            chat_to(
                "claude",
                "c1 c2 c3 c4",
                false,
                json!({"cached_tokens": 1, "cache_write_tokens": 2, "chunks": 3}),
            ),
        ),
        // Chat translated to Gemini: 4 prompt, 2 cached; 3 completion. Streamed: 2 and 2.
        (
            &beta,
            "/v1/chat/completions",
            chat_to(
                "gemini",
                "g1 g2 g3 g4",
                false,
                json!({"cached_tokens": 2, "chunks": 3}),
            ),
        ),
        (
            &beta,
            "/v1/chat/completions",
            chat_to("gemini", "h1 h2", true, json!({"chunks": 2})),
        ),
        // Responses, translated to chat: 3 prompt, 2 completion.
        (
            &beta,
            "/v1/responses",
            json!({"model": "priced-chat", "input": "x y z", "mock": {"chunks": 2}}),
        ),
        // Embeddings: 5 prompt tokens, nothing generated.
        (
            &beta,
            "/v1/embeddings",
            json!({"model": "emb", "input": "e1 e2 e3 e4 e5"}),
        ),
        // An unpriced route: counted, costs nothing.
        (
            &beta,
            "/v1/chat/completions",
            json!({"model": "gpt-test", "messages": [{"role": "user", "content": "free"}]}),
        ),
    ];
    for (key, path, body) in &workload {
        let (status, text) = send(&app, key, path, body).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    app.flush_usage().await;

    // The figures by hand, in micro-dollars per million tokens × tokens.
    let alpha_chat =
        nanos(3 * 2_000_000 + 500_000 + 5 * 8_000_000) + nanos(2 * 2_000_000 + 3 * 8_000_000);
    let alpha_claude = nanos(3_000_000 + 2 * 300_000 + 3 * 3_750_000 + 4 * 15_000_000)
        + nanos(3_000_000 + 300_000 + 2 * 15_000_000)
        + nanos(3_000_000 + 300_000 + 2 * 3_750_000 + 3 * 15_000_000);
    let beta_chat = nanos(3 * 2_000_000 + 2 * 8_000_000);
    let beta_emb = nanos(5 * 20_000);
    let beta_gemini =
        nanos(2 * 300_000 + 2 * 30_000 + 3 * 2_500_000) + nanos(2 * 300_000 + 2 * 2_500_000);
    assert_eq!(
        (alpha_chat, alpha_claude, beta_chat, beta_emb, beta_gemini),
        (74_500, 163_950, 22_000, 100, 13_760)
    );

    let token = app.admin_token().await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let usage = admin_get(&app, &token, "/admin/usage?group_by=key,model,day").await;
    let mut lines: Vec<(String, String, String, f64, f64, i64)> = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["key"] == "alpha" || line["key"] == "beta")
        .map(|line| {
            (
                line["key"].as_str().unwrap().to_owned(),
                line["model"].as_str().unwrap().to_owned(),
                line["day"].as_str().unwrap().to_owned(),
                line["cost_usd"].as_f64().unwrap(),
                line["estimated_cost_usd"].as_f64().unwrap(),
                line["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    lines.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let line = |key: &str, model: &str, nanos: u64, requests: i64| {
        (
            key.to_owned(),
            model.to_owned(),
            today.clone(),
            usd(nanos),
            0.0,
            requests,
        )
    };
    assert_eq!(
        lines,
        [
            line("alpha", "claude", alpha_claude, 3),
            line("alpha", "priced-chat", alpha_chat, 2),
            line("beta", "emb", beta_emb, 1),
            line("beta", "gemini", beta_gemini, 2),
            line("beta", "gpt-test", 0, 1),
            line("beta", "priced-chat", beta_chat, 1),
        ]
    );
    // Any grouping sums the same integers.
    assert_eq!(
        key_cost(&app, &token, "alpha").await,
        Some(usd(alpha_chat + alpha_claude))
    );
    assert_eq!(
        key_cost(&app, &token, "beta").await,
        Some(usd(beta_chat + beta_emb + beta_gemini))
    );

    // Each request log row carries its own cost.
    let logs = admin_get(&app, &token, "/admin/logs?model=claude").await;
    let mut costs: Vec<f64> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["cost_usd"].as_f64().unwrap())
        .collect();
    costs.sort_by(f64::total_cmp);
    assert_eq!(costs, [usd(33_300), usd(55_800), usd(74_850)]);

    // And the metrics count it by model and provider.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = metrics
        .lines()
        .find(|line| {
            line.starts_with("llmgate_cost_usd_total")
                && line.contains(r#"model="claude""#)
                && line.contains(r#"provider="anth""#)
        })
        .unwrap_or_else(|| panic!("no cost sample for claude:\n{metrics}"));
    let value: f64 = sample.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - usd(alpha_claude)).abs() < 1e-12, "{sample}");
    assert!(
        !metrics
            .lines()
            .any(|line| line.starts_with("llmgate_cost_usd_total")
                && line.contains(r#"model="gpt-test""#)),
        "an unpriced route adds no cost sample"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_estimated_usage_gives_an_estimated_cost_marked_as_such() {
    let app = spawn_money().await;
    let body = json!({"model": "priced-chat", "messages": [{"role": "user", "content": "count me please"}],
                      "mock": {"no_usage": true}});
    let (status, _) = send(&app, &app.key, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200);
    app.flush_usage().await;
    let token = app.admin_token().await;
    let logs = admin_get(&app, &token, "/admin/logs?model=priced-chat").await;
    let row = &logs["data"][0];
    assert_eq!(row["estimated"], true);
    let cost = row["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{row}");
    let usage = admin_get(&app, &token, "/admin/usage?group_by=model").await;
    let line = find(&usage["data"], "model", "priced-chat");
    assert_eq!(line["estimated_requests"], 1);
    assert_eq!(line["cost_usd"].as_f64(), Some(cost));
    assert_eq!(line["estimated_cost_usd"].as_f64(), Some(cost));
    app.stop().await;
}

#[tokio::test]
async fn a_failover_to_a_dearer_route_costs_the_dearer_price() {
    let app = spawn_money().await;
    // The cheap route's account fails with a 500; the dear route (another provider, another
    // account) answers: 3 prompt tokens and 2 completion tokens at 10 and 20 per million.
    let body = json!({"model": "failover", "messages": [{"role": "user", "content": "p q r"}],
                      "mock": {"chunks": 2, "status_for_key": {(UPSTREAM_KEY): 500}}});
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-attempts"], "2");
    response.text().await.unwrap();
    app.flush_usage().await;
    let token = app.admin_token().await;
    let logs = admin_get(&app, &token, "/admin/logs?model=failover").await;
    let row = &logs["data"][0];
    assert_eq!(row["provider"], "second");
    let dear = nanos(3 * 10_000_000 + 2 * 20_000_000);
    assert_eq!(row["cost_usd"].as_f64(), Some(usd(dear)));
    assert_ne!(
        dear,
        nanos(3 * 1_000_000 + 2 * 1_000_000),
        "the cheap price differs"
    );
    app.stop().await;
}

/// The route of `model` as `GET /admin/models` shows it.
async fn route_of(app: &TestApp, token: &str, model: &str) -> Value {
    let models = admin_get(app, token, "/admin/models").await;
    find(&models["data"], "name", model)["routes"][0].clone()
}

#[tokio::test]
async fn overrides_come_from_the_file_and_the_admin_api_and_unpriced_routes_are_flagged() {
    let app = spawn_money().await;
    let token = app.admin_token().await;

    // From the file: the route's own figures, and what is in effect.
    let route = route_of(&app, &token, "priced-chat").await;
    assert_eq!(route["input_price"], 2.0);
    assert_eq!(route["cached_input_price"], 0.5);
    assert_eq!(route["output_price"], 8.0);
    assert_eq!(route["cache_write_price"], Value::Null);
    assert_eq!(route["max_output_tokens"], 4096);
    assert_eq!(route["context_window"], Value::Null);
    assert_eq!(route["priced"], true);
    // From the catalog: nothing of its own, the catalog's figures in effect.
    let claude = route_of(&app, &token, "claude").await;
    assert_eq!(claude["input_price"], Value::Null);
    assert_eq!(claude["effective"]["input_price"], 3.0);
    assert_eq!(claude["effective"]["cache_write_price"], 3.75);
    assert_eq!(claude["effective"]["max_output_tokens"], 64_000);
    // Priced nowhere: flagged in the model and in the upstream view.
    let free = route_of(&app, &token, "gpt-test").await;
    assert_eq!(free["priced"], false);
    assert_eq!(free["effective"]["input_price"], Value::Null);
    let upstreams = admin_get(&app, &token, "/admin/upstreams").await;
    let priced_of = |model: &str| find(&upstreams["routes"], "model", model)["priced"].clone();
    assert_eq!(priced_of("gpt-test"), false);
    assert_eq!(priced_of("priced-chat"), true);
    assert_eq!(priced_of("emb"), true);

    // PATCH a route: a price of its own, and one handed back to the catalog.
    let id = free["id"].as_i64().unwrap();
    let patched: Value = app
        .admin(Method::PATCH, &format!("/admin/routes/{id}"), &token)
        .json(&json!({"input_price": 1.5, "output_price": 4.25, "context_window": 32000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["priced"], true, "{patched}");
    assert_eq!(patched["output_price"], 4.25);
    assert_eq!(patched["context_window"], 32000);
    // A bad price is refused naming the field, and nothing changes.
    let refused = app
        .admin(Method::PATCH, &format!("/admin/routes/{id}"), &token)
        .json(&json!({"input_price": -2}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["param"], "input_price", "{body}");

    // The running catalog takes the new prices within its poll interval: 1 prompt token and
    // 2 completion tokens at 1.50 and 4.25 per million.
    let expected = usd(nanos(1_500_000 + 2 * 4_250_000));
    let key = key(&app, "patched").await;
    let found = eventually(Duration::from_secs(5), || async {
        let body = json!({"model": "gpt-test", "messages": [{"role": "user", "content": "one"}],
                          "mock": {"chunks": 2}});
        let (status, _) = send(&app, &key, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200);
        app.flush_usage().await;
        let logs = admin_get(&app, &token, "/admin/logs?model=gpt-test").await;
        logs["data"][0]["cost_usd"].as_f64() == Some(expected)
    })
    .await;
    assert!(found.is_some(), "the patched price never applied");
    let cleared: Value = app
        .admin(Method::PATCH, &format!("/admin/routes/{id}"), &token)
        .json(&json!({"input_price": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["input_price"], Value::Null);
    assert_eq!(
        cleared["priced"], false,
        "an output price alone prices nothing"
    );

    // POST a model whose route carries its prices and limits.
    let created = app
        .admin(Method::POST, "/admin/models", &token)
        .json(
            &json!({"name": "api-priced", "routes": [{"provider": "mock", "model": "gpt-4o",
                      "output_price": 12.5, "max_output_tokens": 1000}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let route = &created["routes"][0];
    assert_eq!(route["output_price"], 12.5);
    assert_eq!(route["input_price"], Value::Null);
    assert_eq!(
        route["effective"]["input_price"], 2.5,
        "gpt-4o's, from the catalog"
    );
    assert_eq!(route["effective"]["output_price"], 12.5);
    assert_eq!(route["effective"]["max_output_tokens"], 1000);
    let bad = app
        .admin(Method::POST, "/admin/models", &token)
        .json(&json!({"name": "bad", "routes": [{"provider": "mock", "model": "x", "max_output_tokens": 0}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(
        body["error"]["param"], "routes[0].max_output_tokens",
        "{body}"
    );
    app.stop().await;
}

/// What llmgate reserves for `body` on `priced-chat` (2.00 in, 8.00 out per million): a token
/// per four bytes of body at the input price, and `max_tokens` at the output price.
fn worst_case(body: &[u8], max_tokens: u64) -> u64 {
    let prompt = (body.len() as u64).div_ceil(4);
    (prompt * 2_000_000 + max_tokens * 8_000_000 + 500) / 1000
}

/// A `priced-chat` request for 4 prompt tokens and 5 completion tokens, as sent bytes.
fn budgeted_body(max_tokens: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "priced-chat", "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "one two three four"}], "mock": {"chunks": 5}}))
    .unwrap()
}

/// What that request really costs, in nano-dollars: 4 × 2 + 5 × 8 micro-dollars.
const REAL_COST: u64 = 48_000;

async fn post_bytes(app: &TestApp, key: &str, path: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dollar_budget_admits_settles_and_refuses_with_the_reset_time() {
    let app = spawn_money().await;
    let body = budgeted_body(1000);
    let reserve = worst_case(&body, 1000);
    // Room for the worst case and two real costs: three requests pass, the fourth does not.
    let budget = reserve + 2 * REAL_COST;
    let token = app.admin_token().await;
    let created: Value = app
        .admin(Method::POST, "/admin/keys", &token)
        .json(&json!({"name": "spender", "budget_usd": usd(budget), "budget_window": "daily"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        created["budget_usd"].as_f64(),
        Some(usd(budget)),
        "{created}"
    );
    let key = created["key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let response = post_bytes(&app, &key, "/v1/chat/completions", body.clone()).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    let refused = post_bytes(&app, &key, "/v1/chat/completions", body.clone()).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 86_400, "{retry_after}");
    let error = crate::helpers::assert_error(refused, 429, "insufficient_quota").await;
    let message = error["error"]["message"].as_str().unwrap();
    let midnight = (chrono::Utc::now().date_naive() + chrono::Days::new(1))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    assert!(
        message.contains("spending budget of this key")
            && message.contains("Set a lower max_tokens")
            && message.ends_with(&format!("it resets at {midnight}.")),
        "{message}"
    );
    // Anthropic's shape on /v1/messages, for the same reason.
    let messages = post_bytes(&app, &key, "/v1/messages", budgeted_body(1000)).await;
    assert_eq!(messages.status(), 429);
    assert!(messages.headers().contains_key("retry-after"));
    let anthropic: Value = messages.json().await.unwrap();
    assert_eq!(anthropic["type"], "error", "{anthropic}");
    assert!(
        anthropic["error"]["message"]
            .as_str()
            .unwrap()
            .contains("spending budget"),
        "{anthropic}"
    );
    // What is left still takes a request that asks for less.
    let small = budgeted_body(10);
    assert!(worst_case(&small, 10) <= budget - 3 * REAL_COST);
    let response = post_bytes(&app, &key, "/v1/chat/completions", small).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    app.flush_usage().await;
    assert_eq!(
        key_cost(&app, &token, "spender").await,
        Some(usd(4 * REAL_COST))
    );
    // Raising the budget through the API lets the large request in again (the running
    // server sees the change within its poll interval); GET shows it.
    let id = created["id"].as_i64().unwrap();
    let raised: Value = app
        .admin(Method::PATCH, &format!("/admin/keys/{id}"), &token)
        .json(&json!({"budget_usd": 1.0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raised["budget_usd"], 1.0, "{raised}");
    let read = admin_get(&app, &token, &format!("/admin/keys/{id}")).await;
    assert_eq!(read["budget_usd"], 1.0);
    let passed = eventually(Duration::from_secs(5), || async {
        let response = post_bytes(&app, &key, "/v1/chat/completions", body.clone()).await;
        let status = response.status();
        response.text().await.unwrap();
        status == 200
    })
    .await;
    assert!(passed.is_some(), "the raised budget never applied");
    // A zero or negative budget is refused, naming the field.
    let refused = app
        .admin(Method::PATCH, &format!("/admin/keys/{id}"), &token)
        .json(&json!({"budget_usd": 0}))
        .send()
        .await
        .unwrap();
    let body = crate::helpers::assert_error(refused, 400, "invalid_request").await;
    assert_eq!(body["error"]["param"], "budget_usd", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn concurrent_requests_racing_for_the_last_dollars_never_spend_past_the_budget() {
    let app = spawn_with(TestOptions {
        extra_config: money_config(),
        mock: MockConfig {
            latency: Duration::from_millis(30),
            ..MockConfig::default()
        },
        ..TestOptions::default()
    })
    .await;
    let body = budgeted_body(1000);
    // One by one, four would pass (each settles at its real cost before the next asks).
    let budget = worst_case(&body, 1000) + 3 * REAL_COST;
    let key = app
        .create_key(NewKey {
            name: "racer".into(),
            budget_usd: Some(Nanodollars(budget)),
            ..NewKey::default()
        })
        .await;
    let answers = futures_util::future::join_all(
        (0..12).map(|_| post_bytes(&app, &key, "/v1/chat/completions", body.clone())),
    )
    .await;
    let mut admitted = 0;
    for response in answers {
        match response.status().as_u16() {
            200 => {
                admitted += 1;
                response.text().await.unwrap();
            }
            429 => {
                crate::helpers::assert_error(response, 429, "insufficient_quota").await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!((1..=4).contains(&admitted), "{admitted} admitted");
    app.flush_usage().await;
    let token = app.admin_token().await;
    let spent = key_cost(&app, &token, "racer").await.unwrap();
    assert_eq!(spent, usd(admitted * REAL_COST));
    assert!(spent <= usd(budget));
    app.stop().await;
}

const SERVED_KEY: &str = "sk-money-restart-test-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spend_of_a_dollar_budget_survives_a_restart_and_unpriced_routes_are_warned_of() {
    let mock = mock::spawn(bind().await, MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = budgeted_body(1000);
    // The first request fits, settles at its real cost, and leaves too little for a second.
    let budget = worst_case(&body, 1000) + REAL_COST / 2;
    let extra = format!(
        r#"
{PRICED_CHAT}

[[keys]]
name = "restarted"
key = "{SERVED_KEY}"
budget_usd = {}
budget_window = "monthly"
"#,
        usd(budget)
    );
    let config = dir.path().join("llmgate.toml");
    std::fs::write(&config, config_text(&mock.base_url(), &extra)).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("llmgate.db").display());
    let args = ["--config", config.to_str().unwrap()];
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |serve: &Serve| {
        client
            .post(serve.url("/v1/chat/completions"))
            .bearer_auth(SERVED_KEY)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };

    let first = Serve::start(&db_url, &args, &[]);
    let warning = first.wait_for("route has no price");
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", first.output()));
    assert!(
        warning.contains("gpt-test") && warning.contains("mock-model"),
        "{warning}"
    );
    assert_eq!(post(&first).await.unwrap().status(), 200);
    assert_eq!(post(&first).await.unwrap().status(), 429);
    // A graceful stop writes the usage; the next process reads its spend back.
    first.stop();

    let second = Serve::start(&db_url, &args, &[]);
    let refused = post(&second).await.unwrap();
    assert_eq!(refused.status(), 429, "the spend was forgotten");
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "insufficient_quota");
    second.stop();
}

#[tokio::test]
async fn the_cli_creates_keys_with_a_dollar_budget_and_lists_their_spend() {
    let app = spawn_money().await;
    let (code, stdout, stderr) = app.cli(&[
        "keys",
        "create",
        "--name",
        "cli-spender",
        "--budget-usd",
        "12.5",
        "--budget-window",
        "weekly",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let key = stdout.lines().last().unwrap().trim().to_owned();
    let body = budgeted_body(10);
    let response = post_bytes(&app, &key, "/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    app.flush_usage().await;
    let (code, stdout, _) = app.cli(&["keys", "list"]);
    assert_eq!(code, 0);
    let line = stdout
        .lines()
        .find(|line| line.contains("cli-spender"))
        .unwrap_or_else(|| panic!("{stdout}"));
    // Its budget, and its spend of the week: 48 micro-dollars show as $0.00.
    assert!(
        line.contains("$12.50/weekly") && line.contains("9 $0.00/weekly"),
        "{line}"
    );
    let (code, _, stderr) = app.cli(&["keys", "create", "--name", "x", "--budget-usd", "lots"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not an amount of USD"), "{stderr}");
    app.stop().await;
}
