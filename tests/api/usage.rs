//! Usage accounting and limits through the real request path.

use llmgate::auth::NewKey;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, chat_body, spawn_app};

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
    let missing = totals
        .iter()
        .find(|t| t.model.as_deref() == Some("no-such-model"))
        .unwrap();
    assert_eq!(missing.counts.errors, 1);
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
            budget_window: Some(llmgate::auth::BudgetWindow::Daily),
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
                json!("no-such-model"),
                [1, 1, 0, 0, 0, 0, 0]
            ),
            (
                json!("test"),
                json!(1),
                json!("other-model"),
                [2, 0, 4, 8, 0, 0, 0]
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
