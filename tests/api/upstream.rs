//! The upstream side under hostile or limiting answers: 429s that limit one model of an
//! account, answers too big to buffer, error bodies that echo credentials.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestOptions, assert_error, chat_answer, chat_body, config_text, spawn_app,
    spawn_scripted, spawn_with,
};

async fn upstreams(app: &TestApp) -> Value {
    let token = app.admin_token().await;
    app.admin(reqwest::Method::GET, "/admin/upstreams", &token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn account<'v>(view: &'v Value, name: &str) -> &'v Value {
    view["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap()
}

fn route<'v>(view: &'v Value, model: &str) -> &'v Value {
    view["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .unwrap()
}

#[tokio::test]
async fn a_429_for_one_model_leaves_the_accounts_other_models_served() {
    // One account (`a1`) serves both `gpt-test` (upstream `mock-model`) and `other-model`
    // (upstream `mock-other`).
    let app = spawn_app().await;
    let mut limited = chat_body("gpt-test", "hi");
    limited["mock"] = json!({"status": 429, "retry_after": 30});
    let response = app.chat(limited).send().await.unwrap();
    assert_error(response, 429, "rate_limit_exceeded").await;

    for _ in 0..3 {
        let response = app
            .chat(chat_body("other-model", "hi"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "the account's other model is served"
        );
    }
    // The limited model itself waits for its cooldown, without asking the upstream again.
    let before = app.mock.request_count();
    let response = app.chat(chat_body("gpt-test", "hi")).send().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((25..=35).contains(&retry_after), "{retry_after}");
    assert_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(app.mock.request_count(), before);

    let view = upstreams(&app).await;
    let a1 = account(&view, "a1");
    assert_eq!(a1["healthy"], true, "{a1}");
    assert_eq!(a1["cooldown_until"], Value::Null, "{a1}");
    let cooldowns = a1["model_cooldowns"].as_array().unwrap();
    assert_eq!(cooldowns.len(), 1, "{a1}");
    assert_eq!(cooldowns[0]["upstream_model"], "mock-model");
    assert!(cooldowns[0]["cooldown_until"].is_string(), "{a1}");
    assert_eq!(cooldowns[0]["recent_errors"], 1, "{a1}");

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (model, value) in [("mock-model", 1), ("mock-other", 0)] {
        let series = format!(
            r#"llmgate_account_unavailable{{account="a1",provider="mock",upstream_model="{model}"}} {value}"#
        );
        assert!(metrics.contains(&series), "no {series} in:\n{metrics}");
    }
    app.stop().await;
}

/// OpenAI's answer when the organisation's quota is spent, whatever the model.
fn insufficient_quota() -> axum::response::Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({"error": {
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota",
            "param": null,
            "code": "insufficient_quota"
        }})),
    )
        .into_response()
}

fn scripted_models(base_url: &str, api_key: &str, models: &[(&str, &str)]) -> String {
    let mut config = format!(
        "\n[[providers]]\nname = \"scripted\"\nkind = \"openai\"\nbase_url = \"{base_url}\"\n\
         \n  [[providers.accounts]]\n  name = \"scripted-account\"\n  api_key = \"{api_key}\"\n"
    );
    for (public, upstream) in models {
        config.push_str(&format!(
            "\n[[models]]\nname = \"{public}\"\n  [[models.routes]]\n  provider = \"scripted\"\n  model = \"{upstream}\"\n"
        ));
    }
    config
}

#[tokio::test]
async fn an_answer_that_the_account_is_out_of_quota_cools_every_model_of_it() {
    let (base_url, asked) = spawn_scripted(|model, _| match model {
        "up-a" => insufficient_quota(),
        other => chat_answer(other),
    })
    .await;
    let app = spawn_with(TestOptions {
        extra_config: scripted_models(
            &base_url,
            "sk-scripted-account-0001",
            &[("quota-a", "up-a"), ("quota-b", "up-b")],
        ),
        ..TestOptions::default()
    })
    .await;
    let response = app.chat(chat_body("quota-b", "hi")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.chat(chat_body("quota-a", "hi")).send().await.unwrap();
    assert_error(response, 429, "rate_limit_exceeded").await;
    let before = asked.load(std::sync::atomic::Ordering::SeqCst);
    let response = app.chat(chat_body("quota-b", "hi")).send().await.unwrap();
    assert_error(response, 429, "rate_limit_exceeded").await;
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "the whole account rests"
    );
    let view = upstreams(&app).await;
    let out = account(&view, "scripted-account");
    assert_eq!(out["healthy"], false, "{out}");
    assert!(out["cooldown_until"].is_string(), "{out}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_credential_invalidates_the_account_for_every_model() {
    let app = spawn_app().await;
    let mut refused = chat_body("gpt-test", "hi");
    refused["mock"] = json!({"status": 401});
    let response = app.chat(refused).send().await.unwrap();
    assert_error(response, 502, "upstream_error").await;
    let response = app
        .chat(chat_body("other-model", "hi"))
        .send()
        .await
        .unwrap();
    assert_error(response, 503, "no_healthy_route").await;
    let view = upstreams(&app).await;
    assert_eq!(account(&view, "a1")["healthy"], false);
    app.stop().await;
}

const LIMIT: usize = 1 << 20;

/// `len` bytes of `x`, sent as 64 KiB chunks with no length announced.
fn unannounced(prefix: &'static str, len: usize) -> axum::body::Body {
    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = std::iter::once(axum::body::Bytes::from_static(prefix.as_bytes()))
        .chain(std::iter::repeat_n(chunk, len / (64 * 1024)))
        .map(Ok::<_, std::io::Error>);
    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
}

/// Models on an upstream whose answers are bigger than `LIMIT`: `big` (announced length),
/// `unannounced` (chunked), `streamy` (one stream line that never ends), and `small`.
async fn spawn_hostile() -> TestApp {
    let (base_url, _) = spawn_scripted(|model, _| match model {
        "up-big" => {
            let mut body = b"{\"pad\":\"".to_vec();
            body.resize(2 * LIMIT, b'x');
            body.extend_from_slice(b"\"}");
            ([("content-type", "application/json")], body).into_response()
        }
        "up-unannounced" => (
            [("content-type", "application/json")],
            unannounced("{\"pad\":\"", 3 * LIMIT),
        )
            .into_response(),
        "up-streamy" => (
            [("content-type", "text/event-stream")],
            unannounced(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"",
                4 * LIMIT,
            ),
        )
            .into_response(),
        other => chat_answer(other),
    })
    .await;
    let mut options = TestOptions {
        extra_config: scripted_models(
            &base_url,
            "sk-scripted-account-0002",
            &[
                ("big", "up-big"),
                ("unannounced", "up-unannounced"),
                ("streamy", "up-streamy"),
                ("small", "up-small"),
            ],
        ),
        ..TestOptions::default()
    };
    options.settings.upstream.max_body_bytes = LIMIT;
    spawn_with(options).await
}

#[tokio::test]
async fn an_answer_past_the_upstream_body_limit_is_a_502_naming_the_limit() {
    let app = spawn_hostile().await;
    for model in ["big", "unannounced"] {
        let response = app.chat(chat_body(model, "hi")).send().await.unwrap();
        let body = assert_error(response, 502, "upstream_answer_too_large").await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("LLMGATE_MAX_UPSTREAM_BODY_BYTES") && message.contains("1048576"),
            "{message}"
        );
    }
    let response = app.chat(chat_body("small", "hi")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let view = upstreams(&app).await;
    for model in ["big", "unannounced"] {
        // Counted against the route once: the same request would bring the same answer, so
        // the target is not retried.
        let failed = route(&view, model);
        assert_eq!(failed["recent_errors"], 1, "{failed}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stream_event_past_the_limit_ends_the_stream_with_the_dialects_error_event() {
    let app = spawn_hostile().await;
    let mut chat = chat_body("streamy", "hi");
    chat["stream"] = json!(true);
    let response = app.chat(chat).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.len() < 2 * LIMIT, "read {} bytes", text.len());
    let last = text.trim_end().lines().last().unwrap();
    let event: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        event["error"]["code"], "upstream_answer_too_large",
        "{last}"
    );

    let response = app
        .post(
            "/v1/messages",
            json!({"model": "streamy", "max_tokens": 16, "stream": true,
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    let data = text
        .rsplit("event: error\n")
        .next()
        .and_then(|rest| rest.lines().next())
        .and_then(|line| line.strip_prefix("data: "))
        .unwrap();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["type"], "error");
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LLMGATE_MAX_UPSTREAM_BODY_BYTES"),
        "{event}"
    );
    // Counted against the route (since the stream's start, which counted as an answer).
    let view = upstreams(&app).await;
    let failed = route(&view, "streamy");
    assert_eq!(failed["recent_errors"], 1, "{failed}");
    app.stop().await;
}

/// The credential of the scripted account in the redaction test: not shaped like any known
/// kind of key, so only its configured value can hide it.
const ECHOED_KEY: &str = "plain-scripted-credential-5a7c";

/// An error answer that quotes what the request carried, as careless upstreams do.
fn echo(status: StatusCode, headers: &HeaderMap) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    (
        status,
        axum::Json(json!({"error": {
            "message": format!("Bad request with '{auth}'; did you mean sk-proj-abcdefghijklmnopqrstu1234?"),
            "type": "invalid_request_error",
            "param": null,
            "code": null
        }})),
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_upstream_error_bodies_reach_neither_the_client_nor_the_log() {
    let (base_url, _) = spawn_scripted(|model, headers| match model {
        "up-400" => echo(StatusCode::BAD_REQUEST, headers),
        "up-429" => echo(StatusCode::TOO_MANY_REQUESTS, headers),
        "up-401" => echo(StatusCode::UNAUTHORIZED, headers),
        _ => echo(StatusCode::INTERNAL_SERVER_ERROR, headers),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("llmgate.toml");
    let client_key = "sk-redaction-test-client-key-0123456789";
    let extra = format!(
        "{}\n[[keys]]\nname = \"redaction\"\nkey = \"{client_key}\"\n",
        scripted_models(
            &base_url,
            ECHOED_KEY,
            &[
                ("echo-400", "up-400"),
                ("echo-500", "up-500"),
                ("echo-429", "up-429"),
                ("echo-401", "up-401"),
            ],
        )
    );
    std::fs::write(&config, config_text("http://127.0.0.1:9/v1", &extra)).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("llmgate.db").display());
    let serve = crate::helpers::Serve::start(
        &db_url,
        &["--config", config.to_str().unwrap()],
        &[("LLMGATE_LOG", "warn,llmgate=debug")],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut answers = Vec::new();
    // The 401 last: it invalidates the account the others need.
    for model in ["echo-400", "echo-500", "echo-429", "echo-401"] {
        let response = client
            .post(serve.url("/v1/chat/completions"))
            .bearer_auth(client_key)
            .json(&chat_body(model, "hi"))
            .send()
            .await
            .unwrap();
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 400, "{answers:?}");
    let relayed: Value = serde_json::from_str(&answers[0].1).unwrap();
    let message = relayed["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "Bad request with 'Bearer [redacted]'; did you mean [redacted]?"
    );
    let log = serve.stop();
    assert!(
        log.contains("answered 500 Internal Server Error") && log.contains("[redacted]"),
        "{log}"
    );
    for (status, body) in &answers {
        assert!(!body.contains(ECHOED_KEY), "{status}: {body}");
        assert!(
            !body.contains("sk-proj-abcdefghijklmnopqrstu1234"),
            "{body}"
        );
    }
    assert!(!log.contains(ECHOED_KEY), "{log}");
    assert!(!log.contains("sk-proj-abcdefghijklmnopqrstu1234"), "{log}");
}

/// A stream that starts well and then carries an error event quoting the request's
/// credential, as a careless upstream might.
fn echoing_stream(headers: &HeaderMap) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let error = json!({"error": {
        "message": format!("stream failed for '{auth}'; try sk-proj-abcdefghijklmnopqrstu1234"),
        "type": "server_error", "param": null, "code": null
    }});
    let body = format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
         \"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"hello\"}}}}]}}\n\n\
         data: {error}\n\n"
    );
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        body,
    )
        .into_response()
}

#[tokio::test]
async fn credentials_in_an_upstream_error_event_mid_stream_never_reach_the_client() {
    let (base_url, _) = spawn_scripted(|_, headers| echoing_stream(headers)).await;
    let app = spawn_with(TestOptions {
        extra_config: scripted_models(&base_url, ECHOED_KEY, &[("echo-stream", "up-stream")]),
        ..TestOptions::default()
    })
    .await;
    // Forwarded as it came (chat), and translated (Messages).
    let chat = app
        .chat(json!({"model": "echo-stream", "stream": true,
                     "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let messages = app
        .post(
            "/v1/messages",
            json!({"model": "echo-stream", "stream": true, "max_tokens": 10,
                   "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for body in [&chat, &messages] {
        assert!(body.contains("hello"), "the stream started: {body}");
        assert!(
            body.contains("error"),
            "and ended with an error event: {body}"
        );
        assert!(!body.contains(ECHOED_KEY), "{body}");
        assert!(
            !body.contains("sk-proj-abcdefghijklmnopqrstu1234"),
            "{body}"
        );
    }
    app.stop().await;
}
