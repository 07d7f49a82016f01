//! Where client input enters: what a hostile client's model names, request ids, paths and
//! bodies may cost the gateway (memory, metrics, disk, log lines), and what they may not.

use llmgate::auth::NewKey;
use llmgate::db::LogQuery;
use serde_json::json;

use crate::helpers::{Serve, assert_error, chat_body, config_text, spawn_app};

async fn metrics_text(app: &crate::helpers::TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn refused_requests_count_against_the_key_rate_limit() {
    let app = spawn_app().await;
    let key = app
        .create_key(NewKey {
            name: "limited".into(),
            models: Some(vec!["gpt-test".into()]),
            rpm: Some(3),
            ..NewKey::default()
        })
        .await;
    let send = |model: &str| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat_body(model, "hi"))
            .send()
    };
    // Not allowed (403, whether the model exists or not) and malformed (400): each uses one
    // request of the minute.
    assert_error(send("other-model").await.unwrap(), 403, "model_not_allowed").await;
    assert_error(
        send("no-such-model").await.unwrap(),
        403,
        "model_not_allowed",
    )
    .await;
    let malformed = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(malformed, 400, "invalid_request").await;
    for _ in 0..3 {
        assert_error(
            send("other-model").await.unwrap(),
            429,
            "rate_limit_exceeded",
        )
        .await;
    }
    assert_error(send("gpt-test").await.unwrap(), 429, "rate_limit_exceeded").await;
}

#[tokio::test]
async fn model_names_that_are_not_configured_never_become_labels_or_rollup_rows() {
    let app = spawn_app().await;
    let names: Vec<String> = (0..5)
        .map(|i| format!("probe-{i}-{}\nINFO forged\u{1b}[31m", "x".repeat(200)))
        .collect();
    for name in &names {
        let response = app.chat(chat_body(name, "hi")).send().await.unwrap();
        let body = assert_error(response, 404, "model_not_found").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 300, "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
    }
    // Past 256 bytes a name is refused before it is looked up, logged or counted.
    let huge = "h".repeat(1 << 20);
    let response = app.chat(chat_body(&huge, "hi")).send().await.unwrap();
    let body = assert_error(response, 400, "invalid_request").await;
    assert_eq!(body["error"]["param"], "model");
    assert!(body.to_string().len() < 1024, "{body}");
    assert_eq!(
        app.chat(chat_body("gpt-test", "hi"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let metrics = metrics_text(&app).await;
    assert!(
        !metrics.contains("probe-"),
        "a client's name became a label"
    );
    assert!(!metrics.contains("hhhh"), "a client's name became a label");
    assert!(
        metrics.contains(r#"model="unknown""#),
        "refusals are counted under one label"
    );
    assert!(metrics.contains(r#"model="gpt-test""#));
    assert!(metrics.len() < 64 * 1024, "{}", metrics.len());

    app.flush_usage().await;
    let mut models: Vec<String> = app
        .usage_by_model()
        .await
        .into_iter()
        .filter_map(|row| row.model)
        .collect();
    models.sort();
    assert_eq!(models, ["gpt-test", "unknown"]);
    let unknown = app
        .usage_by_model()
        .await
        .into_iter()
        .find(|row| row.model.as_deref() == Some("unknown"))
        .unwrap();
    assert_eq!((unknown.counts.requests, unknown.counts.errors), (6, 6));

    let page = app
        .db
        .log_page(&LogQuery {
            limit: 100,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 7);
    for row in &page.rows {
        assert!(row.model.chars().count() <= 65, "{:?}", row.model);
        assert!(!row.model.chars().any(char::is_control), "{:?}", row.model);
    }
    assert!(
        page.rows
            .iter()
            .any(|row| row.model.starts_with("probe-0-xxx") && row.model.ends_with('…')),
        "the request log keeps a short excerpt of the name"
    );
}

#[tokio::test]
async fn client_request_ids_longer_than_128_or_invisible_are_replaced() {
    let app = spawn_app().await;
    let send = |id: &str| {
        app.chat(chat_body("gpt-test", "hi"))
            .header("x-request-id", id)
            .send()
    };
    let longest = "i".repeat(128);
    let response = send(&longest).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], longest.as_str());

    for refused in ["i".repeat(129), "x".repeat(16 * 1024), "has space".into()] {
        let response = send(&refused).await.unwrap();
        assert_eq!(response.status(), 200);
        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert!(echoed.starts_with("req_") && echoed.len() == 28, "{echoed}");
    }
    // Non-ASCII bytes (valid in a header, as obs-text) too.
    let response = app
        .chat(chat_body("gpt-test", "hi"))
        .header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(b"id-\xe9").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );

    // What went upstream and into the request log is the replacement.
    for request in app.mock.requests() {
        let id = request.headers["x-request-id"].as_bytes();
        assert!(id.len() <= 128, "{} bytes went upstream", id.len());
    }
    app.flush_usage().await;
    let page = app
        .db
        .log_page(&LogQuery {
            limit: 100,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 5);
    assert!(page.rows.iter().all(|row| row.request_id.len() <= 128));
}

#[tokio::test]
async fn invalid_utf8_in_a_body_is_refused_naming_the_offset_and_never_forwarded() {
    let app = spawn_app().await;
    let before = app.mock.request_count();
    let mut body = br#"{"model":"gpt-test","messages":[{"role":"user","content":"ab"#.to_vec();
    let offset = body.len();
    body.extend_from_slice(b"\xc3\x28\"}]}");
    for path in ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"] {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(&format!("offset {offset}")), "{path}: {text}");
    }
    assert_eq!(app.mock.request_count(), before, "nothing went upstream");
}

#[tokio::test]
async fn unknown_endpoints_under_v1_are_openai_shaped_name_the_path_and_are_counted() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let response = app
            .post("/v1/assistants/make", json!({"model": "gpt-test"}))
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 404, "not_found").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("POST /v1/assistants/make"), "{message}");
    }
    let response = app
        .client
        .get(app.url(&format!("/v1/{}", "p".repeat(8000))))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 404, "not_found").await;
    assert!(body.to_string().len() < 1024, "{body}");
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(r#"llmgate_unknown_endpoint_requests_total{method="POST"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"llmgate_unknown_endpoint_requests_total{method="GET"} 1"#));
}

#[tokio::test]
async fn client_strings_are_echoed_capped_in_error_messages() {
    let app = spawn_app().await;
    let huge = "r".repeat(1 << 20);
    // A role the Messages API does not know, translated for the OpenAI-compatible mock.
    let response = app
        .post(
            "/v1/messages",
            json!({"model": "gpt-test", "max_tokens": 5,
                   "messages": [{"role": huge, "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.len() < 2048, "{} bytes", text.len());
    // A field of the wrong type quotes its value in the parser's message.
    let response = app
        .chat(json!({"model": "gpt-test", "stream": huge, "messages": []}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "invalid_request").await;
    assert!(body.to_string().len() < 2048);
    let response = app
        .client
        .get(app.url(&format!("/v1/models/{}", "m".repeat(8000))))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 404, "model_not_found").await;
    assert!(body.to_string().len() < 1024, "{body}");
}

/// The real binary with the `pretty` log format: what a client sends cannot forge log lines,
/// replaced ids and unknown endpoints are logged at info, and a request refused because its
/// endpoint is not served by the model's provider is no upstream failure (no warning).
#[tokio::test]
async fn log_lines_escape_client_values_and_log_refusals_at_their_level() {
    let mock = llmgate::mock::spawn(
        crate::helpers::bind().await,
        llmgate::mock::MockConfig::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "sk-edge-test-key-0123456789abcdef0123456789";
    let extra = format!(
        r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{}"
  [[providers.accounts]]
  name = "c1"
  api_key = "sk-ant-upstream-0123456789"

[[models]]
name = "claude-test"
  [[models.routes]]
  provider = "claude"
  model = "claude-upstream"

[[keys]]
name = "edge"
key = "{key}"
"#,
        mock.base_url()
    );
    let config = dir.path().join("c.toml");
    std::fs::write(&config, config_text(&mock.base_url(), &extra)).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("edge.db").display());
    let serve = Serve::start(
        &db_url,
        &["--config", config.to_str().unwrap()],
        &[("LLMGATE_LOG_FORMAT", "pretty"), ("LLMGATE_LOG", "info")],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(serve.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let forged =
        "evil\n2026-12-07T00:00:00.000000Z  INFO llmgate::admin: admin password changed\u{1b}[2J";
    let response = post("/v1/chat/completions", chat_body(forged, "hi"))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = client
        .post(serve.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", "q".repeat(4096))
        .json(&chat_body("gpt-test", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = post("/v1/no-such-endpoint", json!({})).await.unwrap();
    assert_eq!(response.status(), 404);
    let response = post(
        "/v1/embeddings",
        json!({"model": "claude-test", "input": "embed me"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);

    let output = serve.stop();
    assert!(
        !output
            .lines()
            .any(|line| line.contains("admin password changed") && !line.contains(r"evil\n2026")),
        "a client's model name forged a log line:\n{output}"
    );
    assert!(output.contains(r"evil\n2026"), "{output}");
    assert!(!output.contains('\u{1b}'), "{output}");
    assert!(
        output.lines().any(|line| line.contains("INFO")
            && line.contains("replaced the client's x-request-id")
            && line.contains("received_bytes=4096")),
        "{output}"
    );
    assert!(!output.contains(&"q".repeat(200)), "the long id was logged");
    assert!(
        output.lines().any(|line| line.contains("INFO")
            && line.contains("unknown endpoint")
            && line.contains("/v1/no-such-endpoint")),
        "{output}"
    );
    assert!(
        !output.contains("upstream attempt failed"),
        "a refusal was logged as an upstream failure:\n{output}"
    );
}
