//! Non-streaming proxying: the body reaches the upstream unchanged but for `model`, the
//! account's credential replaces the client's, the answer comes back as sent.

use serde_json::json;

use crate::helpers::{UPSTREAM_KEY, assert_error, chat_body, spawn_app};

#[tokio::test]
async fn chat_completion_round_trips_with_only_model_rewritten() {
    let app = spawn_app().await;
    let body = r#"{"model":"gpt-test","messages":[{"role":"user","content":"hello there"}],"temperature":0.25,"x_vendor":{"keep":[1,2.50,"ü"]}}"#;
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "echo: hello there"
    );

    let seen = app.mock.requests();
    assert_eq!(seen.len(), 1);
    let upstream = &seen[0];
    assert_eq!(upstream.path, "/v1/chat/completions");
    assert_eq!(
        std::str::from_utf8(&upstream.body).unwrap(),
        body.replace(r#""model":"gpt-test""#, r#""model":"mock-model""#)
    );
    let auth = upstream
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(auth, format!("Bearer {UPSTREAM_KEY}"));
    for value in upstream.headers.values() {
        assert!(
            !value.to_str().unwrap_or_default().contains(&app.key),
            "client key leaked upstream"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn x_api_key_header_authenticates_too() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("x-api-key", &app.key)
        .json(&chat_body("gpt-test", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_clients_request_id_is_echoed_and_sent_upstream() {
    let app = spawn_app().await;
    let response = app
        .chat(chat_body("gpt-test", "hi"))
        .header("x-request-id", "client-chosen-id-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-id-7");
    assert_eq!(
        app.mock.requests()[0].headers["x-request-id"],
        "client-chosen-id-7"
    );
    app.stop().await;
}

#[tokio::test]
async fn completions_and_embeddings_are_routed_the_same_way() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/v1/completions",
            json!({"model": "gpt-test", "prompt": "say this"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");

    let response = app
        .post(
            "/v1/embeddings",
            json!({"model": "gpt-test", "input": ["a", "b"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);

    let paths: Vec<String> = app.mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1/completions", "/v1/embeddings"]);
    for request in app.mock.requests() {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["model"], "mock-model");
    }
    app.stop().await;
}

#[tokio::test]
async fn models_lists_only_what_the_key_may_use() {
    let app = spawn_app().await;
    let list: serde_json::Value = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-test", "other-model"]);
    assert_eq!(list["data"][0]["object"], "model");

    let limited = app
        .create_key(llmgate::auth::NewKey {
            name: "limited".into(),
            models: Some(vec!["gpt-test".into()]),
            ..Default::default()
        })
        .await;
    let list: serde_json::Value = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let one = app
        .client
        .get(app.url("/v1/models/gpt-test"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one: serde_json::Value = one.json().await.unwrap();
    assert_eq!(one["id"], "gpt-test");
    let hidden = app
        .client
        .get(app.url("/v1/models/other-model"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap();
    assert_error(hidden, 404, "model_not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_need_no_key() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upstream_redirect_is_not_followed_and_the_next_route_serves() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::post;

    // An upstream whose endpoint redirects (307 keeps the method and body) to a path that
    // would answer; llmgate must neither follow it nor pass the bare 307 on.
    let followed = Arc::new(AtomicUsize::new(0));
    let hits = followed.clone();
    let redirecting = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(|| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [("location", "/moved/chat/completions")],
                )
            }),
        )
        .route(
            "/moved/chat/completions",
            post(move || {
                hits.fetch_add(1, Ordering::Relaxed);
                async { axum::Json(json!({"choices": []})) }
            }),
        );
    let listener = crate::helpers::bind().await;
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await });
    let extra = format!(
        r#"
[[providers]]
name = "redirecting"
kind = "openai"
base_url = "{base}"

[[models]]
name = "moved"
  [[models.routes]]
  provider = "redirecting"
  model = "x"

[[models]]
name = "moved-with-backup"
  [[models.routes]]
  provider = "redirecting"
  model = "x"
  [[models.routes]]
  provider = "mock"
  model = "mock-model"
  priority = 1
"#
    );
    let app = crate::helpers::spawn_with(crate::helpers::TestOptions {
        extra_config: extra,
        ..crate::helpers::TestOptions::default()
    })
    .await;

    // The client gets a 502 (the redirect and its target are in the operator's log line).
    let response = app.chat(chat_body("moved", "hi")).send().await.unwrap();
    assert_error(response, 502, "upstream_error").await;

    let response = app
        .chat(chat_body("moved-with-backup", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-route"], "mock");
    assert_eq!(
        followed.load(Ordering::Relaxed),
        0,
        "the redirect was followed"
    );
    app.stop().await;
}
