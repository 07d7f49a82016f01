//! Usage accounting and limits through the real request path.

use llmgate::auth::NewKey;
use serde_json::json;

use crate::helpers::{assert_error, chat_body, spawn_app};

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
