//! Every client-visible error has OpenAI's shape and the contract's status.

use std::time::Duration;

use llmgate::auth::NewKey;
use serde_json::json;

use crate::helpers::{TestOptions, assert_error, chat_body, eventually, spawn_app, spawn_with};

#[tokio::test]
async fn missing_unknown_and_revoked_keys_are_401() {
    let app = spawn_app().await;
    let url = app.url("/v1/chat/completions");
    let body = chat_body("gpt-test", "hi");

    let response = app.client.post(&url).json(&body).send().await.unwrap();
    let error = assert_error(response, 401, "invalid_api_key").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Missing API key")
    );

    let response = app
        .client
        .post(&url)
        .bearer_auth("sk-lg-not-a-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_api_key").await;

    llmgate::auth::revoke_key(&app.db, "test").await.unwrap();
    let refused = eventually(Duration::from_secs(1), || async {
        let response = app.chat(chat_body("gpt-test", "hi")).send().await.unwrap();
        response.status() == 401
    })
    .await;
    assert!(
        refused.is_some(),
        "a revoked key was still accepted after 1 s"
    );
    let response = app.chat(body).send().await.unwrap();
    let error = assert_error(response, 401, "invalid_api_key").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_keys_are_401() {
    let app = spawn_with(TestOptions {
        manual_clock: true,
        ..TestOptions::default()
    })
    .await;
    let key = app
        .create_key(NewKey {
            name: "short-lived".into(),
            // Far enough ahead on the wall clock too, which the key's creation checks.
            expires_at: Some(app.now() + chrono::Duration::hours(1)),
            ..NewKey::default()
        })
        .await;
    app.advance(Duration::from_secs(3600) + Duration::from_millis(100));
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&chat_body("gpt-test", "hi"))
        .send()
        .await
        .unwrap();
    let error = assert_error(response, 401, "invalid_api_key").await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400_with_a_reason() {
    let app = spawn_app().await;
    let send = |body: &'static str| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let error = assert_error(
        send(r#"{"model": "gpt-test",,}"#).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{error}"
    );
    let error = assert_error(
        send(r#"{"messages": []}"#).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(error["error"]["param"], "model");
    assert_eq!(
        app.mock.request_count(),
        0,
        "bad requests never reach the upstream"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_forbidden_models_are_404_and_403() {
    let app = spawn_app().await;
    let response = app
        .chat(chat_body("no-such-model", "hi"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "model_not_found").await;

    let limited = app
        .create_key(NewKey {
            name: "limited".into(),
            models: Some(vec!["gpt-test".into()]),
            ..NewKey::default()
        })
        .await;
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&limited)
        .json(&chat_body("other-model", "hi"))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "model_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let mut options = TestOptions::default();
    options.settings.max_body_bytes = 1024;
    let app = spawn_with(options).await;
    let big = "x".repeat(4096);
    let response = app.chat(chat_body("gpt-test", &big)).send().await.unwrap();
    assert_error(response, 413, "request_too_large").await;
    // Without a Content-Length (chunked), the limit is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 256])).collect();
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "request_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn upstream_client_errors_pass_through_and_rate_limits_keep_their_retry_after() {
    let app = spawn_app().await;
    let mut body = chat_body("gpt-test", "hi");
    body["mock"] = json!({"status": 400});
    let response = app.chat(body).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("simulated"),
        "{answer}"
    );
    assert_eq!(
        app.mock.request_count(),
        1,
        "a client error is never retried"
    );

    // The only account is rate-limited upstream: the client gets a 429 with its Retry-After.
    let mut body = chat_body("gpt-test", "hi");
    body["mock"] = json!({"status": 429, "retry_after": 7});
    let response = app.chat(body).send().await.unwrap();
    assert_eq!(response.headers()["retry-after"], "7");
    assert_error(response, 429, "rate_limit_exceeded").await;
    app.stop().await;
}

#[tokio::test]
async fn upstream_failures_are_502_without_details_but_with_the_request_id() {
    let app = spawn_app().await;
    let mut body = chat_body("gpt-test", "hi");
    body["mock"] = json!({"status": 500});
    let response = app.chat(body).send().await.unwrap();
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let error = assert_error(response, 502, "upstream_error").await;
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains(&request_id), "{message}");
    assert!(!message.contains("127.0.0.1"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn a_dead_upstream_is_502_and_a_hung_one_504() {
    let options = TestOptions {
        extra_config: r#"
[[providers]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "dead-model"
  [[models.routes]]
  provider = "dead"
  model = "x"

[[models]]
name = "slow-model"
timeout = "400ms"
  [[models.routes]]
  provider = "mock"
  model = "slow"
"#
        .into(),
        ..TestOptions::default()
    };
    let app = spawn_with(options).await;
    let response = app
        .chat(chat_body("dead-model", "hi"))
        .send()
        .await
        .unwrap();
    assert_error(response, 502, "upstream_error").await;

    for stream in [false, true] {
        let mut body = chat_body("slow-model", "hi");
        body["stream"] = json!(stream);
        body["mock"] = json!({"hang": true});
        let response = app.chat(body).send().await.unwrap();
        assert_error(response, 504, "upstream_timeout").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_endpoints_are_404_in_the_same_shape() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/nope")).send().await.unwrap();
    assert_error(response, 404, "not_found").await;
    let response = app
        .client
        .get(app.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "not_found").await;
    app.stop().await;
}
