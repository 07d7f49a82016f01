//! Usage accounting and limits through the real request path.

use std::time::{Duration, Instant};

use llmgate::auth::NewKey;
use llmgate::mock::{self, MockConfig, MockHandle};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{
    Serve, TestApp, assert_error, bind, chat_body, config_text, eventually, spawn_app,
};

async fn read_stream(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

#[tokio::test]
async fn every_request_is_counted_with_the_tokens_the_upstream_reported() {
    let app = spawn_app().await;
    // The mock reports prompt = words in the messages, completion = chunks (8 by default).
    for _ in 0..3 {
        let response = app
            .chat(chat_body("gpt-test", "one two three"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Streamed without asking for usage: llmgate asks, the client never sees the usage chunk.
    let mut body = chat_body("gpt-test", "one two three");
    body["stream"] = json!(true);
    for _ in 0..2 {
        let text = read_stream(app.chat(body.clone()).send().await.unwrap()).await;
        assert!(text.contains("[DONE]"));
        assert!(
            !text.contains("\"usage\":{"),
            "the client did not ask for usage: {text}"
        );
    }
    let upstream: serde_json::Value =
        serde_json::from_slice(&app.mock.requests().last().unwrap().body).unwrap();
    assert_eq!(upstream["stream_options"]["include_usage"], true);
    // Streamed and asking: the usage chunk comes through.
    body["stream_options"] = json!({"include_usage": true});
    let text = read_stream(app.chat(body.clone()).send().await.unwrap()).await;
    assert!(text.contains("\"usage\":{"), "{text}");
    // A refused request counts as an error of its key.
    let response = app
        .chat(chat_body("no-such-model", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    app.flush_usage().await;
    let totals = app.usage_by_model().await;
    let gpt = totals
        .iter()
        .find(|t| t.model.as_deref() == Some("gpt-test"))
        .unwrap();
    assert_eq!(gpt.counts.requests, 6);
    assert_eq!(gpt.counts.errors, 0);
    assert_eq!(gpt.counts.prompt_tokens, 6 * 3);
    assert_eq!(gpt.counts.completion_tokens, 6 * 8);
    assert_eq!(gpt.counts.estimated_requests, 0);
    // Counted under one fixed name: a client's names never become rollup rows of their own.
    let missing = totals
        .iter()
        .find(|t| t.model.as_deref() == Some("unknown"))
        .unwrap();
    assert_eq!(missing.counts.errors, 1);
    assert!(
        !totals
            .iter()
            .any(|t| t.model.as_deref() == Some("no-such-model"))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_upstream_without_usage_yields_estimated_counts() {
    let app = spawn_app().await;
    let mut body = chat_body("gpt-test", "count these words please");
    body["mock"] = json!({"no_usage": true});
    assert_eq!(app.chat(body.clone()).send().await.unwrap().status(), 200);
    body["stream"] = json!(true);
    read_stream(app.chat(body).send().await.unwrap()).await;
    app.flush_usage().await;
    let totals = app.usage_by_model().await;
    let gpt = totals
        .iter()
        .find(|t| t.model.as_deref() == Some("gpt-test"))
        .unwrap();
    assert_eq!(gpt.counts.requests, 2);
    assert_eq!(gpt.counts.estimated_requests, 2);
    assert!(gpt.counts.prompt_tokens > 0 && gpt.counts.completion_tokens > 0);
    app.stop().await;
}

#[tokio::test]
async fn a_keys_rpm_refuses_the_request_past_the_limit_with_openai_headers() {
    let app = spawn_app().await;
    let key = app
        .create_key(NewKey {
            name: "limited".into(),
            rpm: Some(2),
            ..NewKey::default()
        })
        .await;
    let send = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat_body("gpt-test", "hi"))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(send().await.unwrap().status(), 200);
    let refused = send().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.headers()["x-ratelimit-remaining-requests"], "0");
    assert_error(refused, 429, "rate_limit_exceeded").await;
    assert_eq!(
        app.mock.request_count(),
        2,
        "a refused request never reaches the upstream"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_spent_budget_is_refused_with_insufficient_quota() {
    let app = spawn_app().await;
    let key = app
        .create_key(NewKey {
            name: "budgeted".into(),
            budget_tokens: Some(30),
            budget_window: Some(llmgate::vocab::BudgetWindow::Daily),
            ..NewKey::default()
        })
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let mut body = chat_body("gpt-test", "hi");
        body["max_tokens"] = json!(8);
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let error = assert_error(response, 429, "insufficient_quota").await;
            assert!(
                error["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("resets"),
                "{error}"
            );
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 1,
        "{statuses:?}"
    );
    app.stop().await;
}

/// An admin GET: its status and JSON body.
async fn admin_get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let response = app
        .admin(reqwest::Method::GET, path, token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A chat request with `key`; returns the response's status and request id.
async fn chat_with(app: &TestApp, key: &str, body: Value) -> (u16, String) {
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.text().await.unwrap();
    (status, request_id)
}

/// The counters of a usage line, in the contract's order.
fn counts(line: &Value) -> [i64; 7] {
    [
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "estimated_requests",
    ]
    .map(|field| {
        line[field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} in {line}"))
    })
}

/// Two keys' traffic with known token counts (the mock reports one prompt token per word and
/// one completion token per chunk, 8 by default), and the request ids of each answer.
async fn known_traffic(app: &TestApp, other_key: &str) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(chat_with(app, &app.key, chat_body("gpt-test", "one two three")).await);
    }
    let mut cached = chat_body("gpt-test", "one two three");
    cached["mock"] = json!({"cached_tokens": 2});
    answers.push(chat_with(app, &app.key, cached).await);
    let mut streamed = chat_body("other-model", "a b");
    streamed["stream"] = json!(true);
    streamed["mock"] = json!({"chunks": 4});
    for _ in 0..2 {
        answers.push(chat_with(app, &app.key, streamed.clone()).await);
    }
    answers.push(chat_with(app, &app.key, chat_body("no-such-model", "x")).await);
    for _ in 0..2 {
        answers.push(chat_with(app, other_key, chat_body("gpt-test", "four five six seven")).await);
    }
    let mut refused = chat_body("gpt-test", "x");
    refused["mock"] = json!({"status": 400});
    answers.push(chat_with(app, other_key, refused).await);
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 404, 200, 200, 400]);
    answers
}

#[tokio::test]
async fn admin_usage_totals_the_rollups_by_any_grouping_with_names() {
    let app = spawn_app().await;
    let other_key = app
        .create_key(NewKey {
            name: "other".into(),
            ..NewKey::default()
        })
        .await;
    known_traffic(&app, &other_key).await;
    app.flush_usage().await;
    let token = app.admin_token().await;
    let today = chrono::Utc::now().date_naive().to_string();

    // No grouping, no dates: one line of today's totals.
    let (status, all) = admin_get(&app, &token, "/admin/usage").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        (all["from"].as_str(), all["to"].as_str()),
        (Some(&*today), Some(&*today))
    );
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(counts(&all["data"][0]), [10, 2, 24, 56, 2, 0, 0]);
    assert!(
        all["data"][0].get("key").is_none(),
        "ungrouped fields are absent: {all}"
    );

    let (_, by_key_model) = admin_get(&app, &token, "/admin/usage?group_by=key,model").await;
    let lines: Vec<(Value, Value, Value, [i64; 7])> = by_key_model["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            assert!(
                line.get("account").is_none() && line.get("day").is_none(),
                "{line}"
            );
            (
                line["key"].clone(),
                line["key_id"].clone(),
                line["model"].clone(),
                counts(line),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (
                json!("test"),
                json!(1),
                json!("gpt-test"),
                [4, 0, 12, 32, 2, 0, 0]
            ),
            (
                json!("test"),
                json!(1),
                json!("other-model"),
                [2, 0, 4, 8, 0, 0, 0]
            ),
            (
                json!("test"),
                json!(1),
                json!("unknown"),
                [1, 1, 0, 0, 0, 0, 0]
            ),
            (
                json!("other"),
                json!(2),
                json!("gpt-test"),
                [3, 1, 8, 16, 0, 0, 0]
            ),
        ]
    );

    // Accounts by name with their provider; a request that reached none has null ones.
    let (_, by_account) = admin_get(&app, &token, "/admin/usage?group_by=account").await;
    let accounts: Vec<(Value, Value, [i64; 7])> = by_account["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            assert!(line.get("account_id").is_some(), "{line}");
            (
                line["account"].clone(),
                line["provider"].clone(),
                counts(line),
            )
        })
        .collect();
    assert_eq!(
        accounts,
        [
            (Value::Null, Value::Null, [1, 1, 0, 0, 0, 0, 0]),
            (json!("a1"), json!("mock"), [9, 1, 24, 56, 2, 0, 0]),
        ]
    );

    let (_, by_day) = admin_get(
        &app,
        &token,
        &format!("/admin/usage?group_by=day,key&from={today}&to={today}T23:59:59Z"),
    )
    .await;
    let days: Vec<(Value, Value, i64)> = by_day["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| (line["day"].clone(), line["key"].clone(), counts(line)[0]))
        .collect();
    assert_eq!(
        days,
        [
            (json!(today), json!("test"), 7),
            (json!(today), json!("other"), 3)
        ]
    );
    assert_eq!(by_day["group_by"], json!(["day", "key"]));

    // Days without traffic: no groups, or one line of zeros.
    let (_, past) = admin_get(
        &app,
        &token,
        "/admin/usage?from=2000-01-01&to=2000-01-31&group_by=model",
    )
    .await;
    assert_eq!(past["data"], json!([]));
    let (_, past) = admin_get(&app, &token, "/admin/usage?from=2000-01-01&to=2000-01-31").await;
    assert_eq!(counts(&past["data"][0]), [0; 7]);
    app.stop().await;
}

#[tokio::test]
async fn admin_logs_page_request_rows_newest_first_under_filters() {
    let app = spawn_app().await;
    let other_key = app
        .create_key(NewKey {
            name: "other".into(),
            ..NewKey::default()
        })
        .await;
    let answers = known_traffic(&app, &other_key).await;
    app.flush_usage().await;
    let token = app.admin_token().await;

    // Paging through everything gives every request once, newest first.
    let mut seen = Vec::new();
    let mut path = "/admin/logs?limit=3".to_owned();
    loop {
        let (status, page) = admin_get(&app, &token, &path).await;
        assert_eq!(status, 200, "{page}");
        let rows = page["data"].as_array().unwrap();
        assert!(rows.len() <= 3);
        seen.extend(rows.iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(cursor) => path = format!("/admin/logs?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<String> = seen
        .iter()
        .map(|row| row["request_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = answers.iter().rev().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids, expected);

    let first = &seen[seen.len() - 1];
    assert_eq!(first["key"], "test");
    assert_eq!(first["model"], "gpt-test");
    assert_eq!(first["endpoint"], "chat_completions");
    assert_eq!(
        (first["status"].as_i64(), first["attempts"].as_i64()),
        (Some(200), Some(1))
    );
    assert_eq!(
        (first["provider"].as_str(), first["account"].as_str()),
        (Some("mock"), Some("a1"))
    );
    assert_eq!(
        (
            first["prompt_tokens"].as_i64(),
            first["completion_tokens"].as_i64()
        ),
        (Some(3), Some(8))
    );
    assert_eq!(first["stream"], false);
    assert_eq!(first["estimated"], false);
    assert!(first["latency_ms"].as_i64().is_some() && first["route_id"].as_i64().is_some());
    assert!(
        chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).is_ok(),
        "{first}"
    );

    let filtered = |query: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            let (status, page) = admin_get(app, token, &format!("/admin/logs?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            page["data"].as_array().unwrap().clone()
        }
    };
    let other = filtered("key=other").await;
    assert_eq!(other.len(), 3);
    assert!(other.iter().all(|row| row["key"] == "other"));
    assert_eq!(filtered("key=2").await.len(), 3, "a key's id works too");
    let missing = filtered("status=404").await;
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["model"], "no-such-model");
    assert_eq!(
        (&missing[0]["account"], &missing[0]["provider"]),
        (&Value::Null, &Value::Null)
    );
    let streams = filtered("model=other-model&key=test").await;
    assert_eq!(streams.len(), 2);
    assert!(streams.iter().all(|row| row["stream"] == true
        && row["completion_tokens"] == 4
        && row["ttfb_ms"].as_i64().is_some()));
    assert_eq!(filtered("key=other&status=400").await.len(), 1);
    assert_eq!(filtered("from=2000-01-01&to=2000-12-31").await.len(), 0);
    let today = chrono::Utc::now().date_naive();
    let (status, page) = admin_get(
        &app,
        &token,
        &format!("/admin/logs?from={today}&limit=1000"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 10);
    assert_eq!(page["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn admin_usage_and_logs_refuse_bad_parameters_naming_them() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for (path, param) in [
        ("/admin/usage?from=yesterday", "from"),
        ("/admin/usage?to=2025-02-30", "to"),
        ("/admin/usage?from=2025-02-02&to=2025-02-01", "from"),
        ("/admin/usage?group_by=user", "group_by"),
        ("/admin/usage?group_by=key&group_by=model", "group_by"),
        ("/admin/usage?limit=10", "limit"),
        ("/admin/logs?status=ok", "status"),
        ("/admin/logs?status=99", "status"),
        ("/admin/logs?limit=0", "limit"),
        ("/admin/logs?limit=5000", "limit"),
        ("/admin/logs?cursor=-3", "cursor"),
        ("/admin/logs?from=2025-01-01T00:00:00", "from"),
        ("/admin/logs?from=2025-02-02&to=2025-02-01", "from"),
        ("/admin/logs?key=nobody", "key"),
        ("/admin/logs?key=", "key"),
        ("/admin/logs?group_by=key", "group_by"),
    ] {
        let response = app
            .admin(reqwest::Method::GET, path, &token)
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 400, "invalid_request").await;
        assert_eq!(
            body["error"]["type"], "invalid_request_error",
            "{path}: {body}"
        );
        assert_eq!(body["error"]["param"], param, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(param),
            "{path}: {body}"
        );
    }
    app.stop().await;
}

/// The plaintext of the key the config file gives `serve` in the fault tests.
const SERVED_KEY: &str = "sk-usage-fault-test-key-0123456789";

/// A `serve` process on a fresh database in `dir`, routing `gpt-test` to `mock`, flushing usage
/// every `flush_interval`. Returns it with its database URL.
fn serve_in(dir: &TempDir, mock: &MockHandle, flush_interval: &str) -> (Serve, String) {
    let config = dir.path().join("llmgate.toml");
    let extra = format!("[[keys]]\nname = \"load\"\nkey = \"{SERVED_KEY}\"\n");
    std::fs::write(&config, config_text(&mock.base_url(), &extra)).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("llmgate.db").display());
    let serve = Serve::start(
        &db_url,
        &["--config", config.to_str().unwrap()],
        &[
            ("LLMGATE_USAGE_FLUSH_INTERVAL", flush_interval),
            ("LLMGATE_LOG", "warn,llmgate=info"),
        ],
    );
    (serve, db_url)
}

/// What a stopped process left in its database: the integrity check's verdict, the rollups'
/// totals and the request log's rows.
struct Left {
    integrity: Vec<String>,
    requests: i64,
    errors: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    /// (request id, status) of every request log row.
    log: Vec<(String, i64)>,
}

async fn left_in(db_url: &str) -> Left {
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(db_url).await.unwrap();
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut db)
        .await
        .unwrap();
    let (requests, errors, prompt_tokens, completion_tokens): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0),
                 COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
             FROM usage_daily",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
    let log = sqlx::query_as("SELECT request_id, status FROM request_log")
        .fetch_all(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    Left {
        integrity,
        requests,
        errors,
        prompt_tokens,
        completion_tokens,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_last_flush_interval_and_leaves_a_consistent_database() {
    const FLUSH: Duration = Duration::from_millis(250);
    // Time for a flush to run and commit after its tick, on a machine busy with the load.
    const SLACK: Duration = Duration::from_millis(500);
    const WORKERS: usize = 4;
    let mock = mock::spawn(bind().await, MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (serve, db_url) = serve_in(&dir, &mock, "250ms");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = serve.url("/v1/chat/completions");

    // Steady traffic until the process dies; each worker notes when each answer arrived.
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                loop {
                    let sent = client
                        .post(&url)
                        .bearer_auth(SERVED_KEY)
                        .json(&chat_body("gpt-test", "one two three"))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            if response.bytes().await.is_err() {
                                break;
                            }
                            answered.push(Instant::now());
                        }
                        Ok(response) => panic!("unexpected status {}", response.status()),
                        Err(_) => break,
                    }
                }
                answered
            })
        })
        .collect();
    // Several flush intervals of traffic, then the process dies mid-stride.
    tokio::time::sleep(FLUSH * 8).await;
    let killed_at = Instant::now();
    serve.kill_9();
    let mut answered = Vec::new();
    for worker in workers {
        let times = tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("a load worker did not notice the process was gone")
            .unwrap();
        answered.extend(times);
    }

    let left = left_in(&db_url).await;
    assert_eq!(left.integrity, ["ok"]);
    // Every answer older than a flush interval (and the flush's own time) was written.
    let old_enough = answered
        .iter()
        .filter(|at| **at + FLUSH + SLACK <= killed_at)
        .count() as i64;
    assert!(old_enough > 0, "no traffic before the last interval");
    assert!(
        left.requests >= old_enough,
        "{} requests in the rollups, {old_enough} answered more than {:?} before the kill",
        left.requests,
        FLUSH + SLACK
    );
    // Nothing invented: at most what was answered, plus one in flight per worker (recorded
    // before its answer left).
    assert!(left.requests <= answered.len() as i64 + WORKERS as i64);
    // Each flush is one transaction: counters and log rows agree, to the token.
    assert_eq!(left.log.len() as i64, left.requests);
    assert_eq!(left.errors, 0);
    assert_eq!(
        (left.prompt_tokens, left.completion_tokens),
        (3 * left.requests, 8 * left.requests)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_answered_request() {
    const WORKERS: usize = 16;
    let mock = mock::spawn(bind().await, MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A long interval: what reaches the database is written by the final flush at shutdown.
    let (serve, db_url) = serve_in(&dir, &mock, "1h");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = serve.url("/v1/chat/completions");

    // Half the workers stream slowly, so requests are in flight when SIGTERM arrives.
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut answers: Vec<(u16, String)> = Vec::new();
                let mut body = chat_body("gpt-test", "one two three");
                if worker % 2 == 1 {
                    body["stream"] = json!(true);
                    body["mock"] = json!({"chunks": 8, "chunk_delay_ms": 40});
                }
                loop {
                    let response = match client
                        .post(&url)
                        .bearer_auth(SERVED_KEY)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(response) => response,
                        // Refused or closed: the server has stopped taking requests.
                        Err(_) => break,
                    };
                    let status = response.status().as_u16();
                    let request_id = response.headers()["x-request-id"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let text = response.text().await.expect("an answer was cut off");
                    if worker % 2 == 1 && status == 200 {
                        assert!(
                            text.trim_end().ends_with("data: [DONE]"),
                            "a stream was cut: {text}"
                        );
                    }
                    answers.push((status, request_id));
                }
                answers
            })
        })
        .collect();
    let busy = eventually(Duration::from_secs(10), || async {
        mock.request_count() >= 4 * WORKERS as u64
    })
    .await;
    assert!(busy.is_some(), "the load never got going");
    serve.terminate();
    let mut serve = serve;
    let (code, serve) = tokio::task::spawn_blocking(move || {
        let code = serve.wait_exit(Duration::from_secs(20));
        (code, serve)
    })
    .await
    .unwrap();
    assert_eq!(
        code,
        Some(0),
        "serve did not exit cleanly:\n{}",
        serve.output()
    );
    let mut answers = Vec::new();
    for worker in workers {
        let done = tokio::time::timeout(Duration::from_secs(10), worker)
            .await
            .expect("a load worker hung after the shutdown")
            .unwrap();
        answers.extend(done);
    }

    let left = left_in(&db_url).await;
    assert_eq!(left.integrity, ["ok"]);
    let ok: Vec<&String> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, id)| id)
        .collect();
    assert!(ok.len() >= 2 * WORKERS, "{} answers", ok.len());
    let logged: std::collections::HashMap<&str, i64> = left
        .log
        .iter()
        .map(|(id, status)| (id.as_str(), *status))
        .collect();
    for id in &ok {
        assert_eq!(
            logged.get(id.as_str()),
            Some(&200),
            "request {id} is not in the log"
        );
    }
    // Every answer, and nothing else, is in the rollups and the log.
    assert_eq!(left.requests, answers.len() as i64);
    assert_eq!(left.log.len(), answers.len());
    assert_eq!(left.errors, (answers.len() - ok.len()) as i64);
    assert_eq!(left.completion_tokens, 8 * ok.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_never_spend_past_a_budget_when_usage_fits_the_reservation() {
    let app = spawn_app().await;
    // Every request is the same body, so each reserves the same estimate and uses the same tokens.
    let mut body = chat_body("gpt-test", "one two three");
    body["max_tokens"] = json!(16);
    body["mock"] = json!({"latency_ms": 100});
    let bytes = serde_json::to_vec(&body).unwrap();
    let reservation = llmgate::limits::estimate_request_tokens(&bytes);
    let send = |key: String| {
        let request = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(bytes.clone());
        async move { request.send().await.unwrap() }
    };
    let usage_of = |answer: Value| answer["usage"]["total_tokens"].as_u64().unwrap();
    let used = usage_of(send(app.key.clone()).await.json().await.unwrap());
    assert!(
        used <= reservation,
        "the bound below needs usage within the reservation: {used} > {reservation}"
    );

    // A budget with room for two and a half reservations left after three requests.
    let budget = 3 * used + 2 * reservation + reservation / 2;
    let key = app
        .create_key(NewKey {
            name: "budgeted".into(),
            budget_tokens: Some(budget),
            ..NewKey::default()
        })
        .await;
    for _ in 0..3 {
        assert_eq!(send(key.clone()).await.status(), 200);
    }

    let answers = futures_util::future::join_all((0..64).map(|_| send(key.clone()))).await;
    let mut spent_by_ok = 0;
    let mut refused = 0;
    for response in answers {
        match response.status().as_u16() {
            200 => spent_by_ok += usage_of(response.json().await.unwrap()),
            429 => {
                assert_error(response, 429, "insufficient_quota").await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused > 0 && spent_by_ok > 0, "{refused} refused");

    app.flush_usage().await;
    let token = app.admin_token().await;
    let (_, by_key) = admin_get(&app, &token, "/admin/usage?group_by=key").await;
    let line = by_key["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["key"] == "budgeted")
        .unwrap()
        .clone();
    let spent =
        line["prompt_tokens"].as_u64().unwrap() + line["completion_tokens"].as_u64().unwrap();
    assert_eq!(
        spent,
        3 * used + spent_by_ok,
        "the rollups hold what the answers reported"
    );
    assert_eq!(line["requests"].as_i64(), Some(3 + 64));
    assert_eq!(line["errors"].as_i64(), Some(refused));
    // The reservation rule: a request is admitted only when spent + reserved + its own
    // reservation fit in the budget, and its reservation covers its usage; so the spend never
    // passes the budget (it could only by usage beyond a reservation).
    assert!(
        spent <= budget,
        "spent {spent} of {budget} with usage {used} <= reservation {reservation}"
    );
    app.stop().await;
}
