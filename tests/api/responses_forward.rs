//! `/v1/responses` to a provider declared with `responses = true`: forwarded to its own
//! `/responses` as sent (only `model` rewritten), streams relayed event by event, usage read from
//! its answer; failover, a stream cut mid-answer, the config file's and the admin API's rules.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestOptions, eventually, read_until, spawn_with};
use crate::responses::events;

/// The default `mock` provider (openai, translated) plus `native`, the same mock declared with
/// `responses = true`, and models routed to it: `forwarded` (one route), `falls-back`
/// (`native` first, with an account the test makes fail, then the translated `mock`).
async fn spawn_native() -> TestApp {
    spawn_native_with(TestOptions::default()).await
}

/// [`spawn_native`] with `options` (its providers and models added to theirs).
async fn spawn_native_with(options: TestOptions) -> TestApp {
    let extra = r#"
[[providers]]
name = "native"
kind = "openai"
base_url = "{mock}"
responses = true
  [[providers.accounts]]
  name = "n1"
  api_key = "sk-native-upstream-0001"

[[providers]]
name = "native-failing"
kind = "openai"
base_url = "{mock}"
responses = true
  [[providers.accounts]]
  name = "f1"
  api_key = "sk-native-failing-0002"

[[models]]
name = "forwarded"
  [[models.routes]]
  provider = "native"
  model = "up-responses"

[[models]]
name = "falls-back"
max_attempts = 3
  [[models.routes]]
  provider = "native-failing"
  model = "up-first"
  priority = 0
  [[models.routes]]
  provider = "mock"
  model = "up-second"
  priority = 1
"#;
    spawn_with(TestOptions {
        extra_config: format!("{}{extra}", options.extra_config),
        ..options
    })
    .await
}

fn responses(app: &TestApp, body: &Value) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/v1/responses"))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body(serde_json::to_vec_pretty(body).unwrap())
}

/// The usage recorded for `model` today, once every request so far is written.
async fn usage_of(app: &TestApp, model: &str) -> llmgate::db::UsageCounts {
    app.flush_usage().await;
    app.usage_by_model()
        .await
        .into_iter()
        .find(|row| row.model.as_deref() == Some(model))
        .unwrap_or_else(|| panic!("no usage recorded for {model}"))
        .counts
}

/// The app with a `responses = true` provider whose every answer `answer` writes (its
/// content type and body, for the upstream model named): model `scripted` goes to it as
/// upstream model `up`, `scripted-stream` as `up-stream`; `max_upstream_body` sets the cap.
async fn spawn_scripted_native(
    max_upstream_body: Option<usize>,
    answer: impl Fn(&str) -> (&'static str, String) + Send + Sync + 'static,
) -> TestApp {
    let (base_url, _count) = crate::helpers::spawn_scripted(move |model, _headers| {
        let (content_type, body) = answer(model);
        axum::response::Response::builder()
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .unwrap()
    })
    .await;
    let extra = format!(
        r#"
[[providers]]
name = "scripted"
kind = "openai"
base_url = "{base_url}"
responses = true

[[models]]
name = "scripted"
  [[models.routes]]
  provider = "scripted"
  model = "up"

[[models]]
name = "scripted-stream"
  [[models.routes]]
  provider = "scripted"
  model = "up-stream"
"#
    );
    let mut options = TestOptions {
        extra_config: extra,
        ..TestOptions::default()
    };
    if let Some(limit) = max_upstream_body {
        options.settings.upstream.max_body_bytes = limit;
    }
    spawn_with(options).await
}

/// A request of Codex's shape: hosted and namespace tools next to a function.
fn codex_like(stream: bool) -> Value {
    json!({
        "model": "forwarded",
        "instructions": "be brief",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one two three"}]}],
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}},
            {"type": "web_search", "external_web_access": false},
            {"type": "namespace", "name": "multi_agent_v1", "tools": []},
            {"type": "local_shell"}
        ],
        "include": ["reasoning.encrypted_content"],
        "store": false,
        "stream": stream,
        "mock": {"chunks": 4, "cached_tokens": 2, "reasoning_tokens": 3}
    })
}

#[tokio::test]
async fn a_forwarded_request_reaches_the_upstream_as_sent_but_for_its_model() {
    let app = spawn_native().await;
    let sent = codex_like(false);
    let response = responses(&app, &sent).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("x-llmgate-dropped-tools").is_none(),
        "nothing is left out of a forwarded request"
    );
    assert_eq!(response.headers()["x-llmgate-route"], "native");
    let answer: Value = response.json().await.unwrap();
    // The upstream's own response object, not one llmgate wrote.
    assert!(
        answer["id"].as_str().unwrap().starts_with("resp_mock"),
        "{answer}"
    );
    assert_eq!(answer["model"], "up-responses");
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        "echo: one two three"
    );

    let received = app.mock.requests().pop().unwrap();
    assert_eq!(received.path, "/v1/responses");
    assert_eq!(
        received.headers["authorization"],
        "Bearer sk-native-upstream-0001"
    );
    // Byte for byte, but for the model's value: the pretty-printed body keeps its layout.
    let expected = String::from_utf8(serde_json::to_vec_pretty(&sent).unwrap())
        .unwrap()
        .replace(r#""model": "forwarded""#, r#""model": "up-responses""#);
    assert_eq!(String::from_utf8(received.body.to_vec()).unwrap(), expected);
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_stream_is_relayed_event_by_event_and_its_usage_recorded_exactly() {
    let app = spawn_native().await;
    let response = responses(&app, &codex_like(true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-llmgate-dropped-tools").is_none());
    let text = response.text().await.unwrap();
    let events = events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    assert_eq!(
        names
            .iter()
            .filter(|n| **n == "response.output_text.delta")
            .count(),
        4
    );
    // The upstream's events, as it numbered them, ids and all; no `[DONE]`.
    let id = events[0].1["response"]["id"].as_str().unwrap();
    assert!(id.starts_with("resp_mock"), "{id}");
    for (number, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], number);
    }
    assert_eq!(events.last().unwrap().1["response"]["id"], id);
    assert!(!text.contains("[DONE]"));

    // And once more whole: usage of both is read from the answers, exactly.
    let response = responses(&app, &codex_like(false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let counts = usage_of(&app, "forwarded").await;
    // "be brief" and "one two three": five words in; four pieces and three reasoning out.
    assert_eq!(
        (
            counts.requests,
            counts.errors,
            counts.prompt_tokens,
            counts.completion_tokens,
            counts.cached_tokens,
            counts.reasoning_tokens,
            counts.estimated_requests
        ),
        (2, 0, 10, 14, 4, 6, 0)
    );
    let token = app.admin_token().await;
    let logs = app.admin_json("/admin/logs?limit=2", &token).await;
    for row in logs["data"].as_array().unwrap() {
        assert_eq!(row["endpoint"], "responses");
        assert_eq!(row["provider"], "native");
        assert_eq!(
            (
                &row["prompt_tokens"],
                &row["completion_tokens"],
                &row["reasoning_tokens"]
            ),
            (&json!(5), &json!(7), &json!(3)),
            "{row}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_answer_without_usage_is_estimated_from_its_text() {
    let app = spawn_native().await;
    let body = json!({"model": "forwarded", "input": "one two three",
        "mock": {"no_usage": true, "content": "a reply of several words to count"}});
    let response = responses(&app, &body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["usage"].is_null(), "{answer}");
    let counts = usage_of(&app, "forwarded").await;
    assert_eq!(counts.estimated_requests, 1);
    assert!(counts.prompt_tokens > 0, "{counts:?}");
    // The output's text is counted, not nothing.
    assert!(counts.completion_tokens >= 5, "{counts:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_forwarded_route_fails_over_before_the_first_byte() {
    let app = spawn_native().await;
    for stream in [false, true] {
        let body = json!({"model": "falls-back", "input": "hello there", "stream": stream,
            "tools": [{"type": "web_search"}],
            "mock": {"status_for_key": {"sk-native-failing-0002": 503}}});
        let response = responses(&app, &body).send().await.unwrap();
        assert_eq!(response.status(), 200, "stream {stream}");
        assert_eq!(response.headers()["x-llmgate-attempts"], "2");
        assert_eq!(response.headers()["x-llmgate-route"], "mock");
        // The second route is translated: there the hosted tool is left out, and named.
        assert_eq!(response.headers()["x-llmgate-dropped-tools"], "web_search");
        let text = response.text().await.unwrap();
        assert!(text.contains("echo: hello there"), "{text}");
        let paths: Vec<String> = app
            .mock
            .requests()
            .iter()
            .rev()
            .take(2)
            .map(|r| r.path.clone())
            .collect();
        assert_eq!(paths, ["/v1/chat/completions", "/v1/responses"]);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_stream_cut_mid_answer_ends_with_response_failed() {
    let app = spawn_native().await;
    let body = json!({"model": "forwarded", "input": "one two three four", "stream": true,
        "mock": {"chunks": 6, "cut_after": 2}});
    let text = responses(&app, &body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let deltas = events
        .iter()
        .filter(|(name, _)| name == "response.output_text.delta")
        .count();
    assert_eq!(deltas, 2, "{text}");
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.failed", "{text}");
    assert_eq!(data["response"]["status"], "failed");
    let message = data["response"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("req_"), "{message}");
    let counts = usage_of(&app, "forwarded").await;
    assert_eq!((counts.requests, counts.errors), (1, 1));
    // Cut short, its usage is llmgate's estimate.
    assert_eq!(counts.estimated_requests, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_stream_that_stops_without_its_last_event_ends_with_response_failed() {
    let app = spawn_scripted_native(None, |_model| {
        let events = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_up\",\"status\":\"in_progress\",\"usage\":null}}\n\n\
            event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"half an answer\"}\n\n";
        ("text/event-stream", events.to_owned())
    })
    .await;
    let body = json!({"model": "scripted", "input": "x", "stream": true});
    let text = responses(&app, &body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert_eq!(events.len(), 3, "{text}");
    assert_eq!(events[1].1["delta"], "half an answer");
    assert_eq!(events[2].0, "response.failed", "{text}");
    assert_eq!(usage_of(&app, "scripted").await.errors, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_answer_past_the_upstream_body_cap_fails_like_any_other() {
    const LIMIT: usize = 64 * 1024;
    let app = spawn_scripted_native(Some(LIMIT), |model| {
        let big = "x".repeat(2 * LIMIT);
        if model == "up-stream" {
            let events = format!(
                "event: response.created\ndata: {{\"type\":\"response.created\",\"sequence_number\":0,\"response\":{{\"id\":\"resp_up\",\"usage\":null}}}}\n\n\
                 event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"{big}\"}}\n\n"
            );
            ("text/event-stream", events)
        } else {
            let body = json!({"id": "resp_up", "object": "response", "status": "completed",
                "output": [{"type": "message", "content": [{"type": "output_text", "text": big}]}]});
            ("application/json", body.to_string())
        }
    })
    .await;
    let response = responses(&app, &json!({"model": "scripted", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_answer_too_large", "{body}");

    let body = json!({"model": "scripted-stream", "input": "x", "stream": true});
    let text = responses(&app, &body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.len() < 2 * LIMIT, "read {} bytes", text.len());
    // The event past the cap was cut where the cap fell: `response.failed` starts on a fresh
    // line after it, and ends the stream.
    let (_, failed) = text
        .rsplit_once("\n\nevent: response.failed\n")
        .expect("a response.failed event");
    let data: Value =
        serde_json::from_str(failed.trim_end().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(data["type"], "response.failed");
    let message = data["response"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("LLMGATE_MAX_UPSTREAM_BODY_BYTES"),
        "{message}"
    );
    app.stop().await;
}

#[test]
fn responses_true_is_refused_on_a_provider_that_is_not_openai_compatible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmgate.toml");
    std::fs::write(
        &path,
        r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
responses = true
"#,
    )
    .unwrap();
    let output = Command::new(TestApp::bin())
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("responses") && stderr.contains("kind anthropic"),
        "{stderr}"
    );
    assert!(stderr.contains("line 6"), "{stderr}");
}

#[tokio::test]
async fn the_admin_api_reads_and_writes_the_responses_flag() {
    let app = spawn_native().await;
    let token = app.admin_token().await;
    let send = |method: reqwest::Method, path: &str, body: Value| {
        app.admin(method, path, &token).json(&body).send()
    };
    let response = send(
        reqwest::Method::POST,
        "/admin/providers",
        json!({"name": "openai-native", "kind": "openai", "base_url": "https://api.openai.com/v1", "responses": true}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["responses"], true);
    let id = created["id"].as_i64().unwrap();
    let path = format!("/admin/providers/{id}");

    let read = app.admin_json(&path, &token).await;
    assert_eq!(read["responses"], true);

    // Another kind cannot take the flag, in a PATCH of either.
    let response = send(reqwest::Method::PATCH, &path, json!({"kind": "anthropic"}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "responses", "{error}");
    let patched: Value = send(reqwest::Method::PATCH, &path, json!({"responses": false}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["responses"], false);
    let patched: Value = send(reqwest::Method::PATCH, &path, json!({"kind": "anthropic"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["kind"], "anthropic");
    let response = send(reqwest::Method::PATCH, &path, json!({"responses": true}))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = send(
        reqwest::Method::POST,
        "/admin/providers",
        json!({"name": "gem", "kind": "gemini", "base_url": "https://g.example.com/v1beta", "responses": true}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("OpenAI-compatible"), "{message}");

    // The listing shows the flag of every provider; the config file's too.
    let list = app.admin_json("/admin/providers", &token).await;
    let flags: Vec<(String, bool)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["responses"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(flags.contains(&("native".into(), true)), "{flags:?}");
    assert!(flags.contains(&("mock".into(), false)), "{flags:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_provider_switched_to_responses_by_the_admin_api_is_forwarded_to_at_once() {
    let app = spawn_native().await;
    let token = app.admin_token().await;
    let list = app.admin_json("/admin/providers", &token).await;
    let mock_id = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mock")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let body = json!({"model": "gpt-test", "input": "hi"});
    responses(&app, &body).send().await.unwrap();
    assert_eq!(
        app.mock.requests().pop().unwrap().path,
        "/v1/chat/completions"
    );
    let response = app
        .admin(
            reqwest::Method::PATCH,
            &format!("/admin/providers/{mock_id}"),
            &token,
        )
        .json(&json!({"responses": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The catalog is rebuilt at once, but not within the admin call: wait for it.
    let forwarded = eventually(Duration::from_secs(5), || async {
        responses(&app, &body).send().await.unwrap();
        app.mock.requests().pop().unwrap().path == "/v1/responses"
    })
    .await;
    assert!(forwarded.is_some(), "the switch reaches the catalog");
    // Chat on the same provider is still chat.
    app.chat(crate::helpers::chat_body("gpt-test", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.mock.requests().pop().unwrap().path,
        "/v1/chat/completions"
    );
    app.stop().await;
}

/// The response object of the final event of a Responses stream.
async fn streamed_final(app: &TestApp, body: &Value) -> Value {
    let answer = responses(app, body).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    let (name, data) = events(&text).pop().unwrap();
    assert_eq!(name, "response.completed", "{text}");
    data["response"].clone()
}

#[tokio::test]
async fn a_forwarded_response_is_stored_and_continued_with_its_turns_in_the_input() {
    let app = spawn_native().await;
    // Streamed: kept from the upstream's final event, readable at once.
    let first = streamed_final(
        &app,
        &json!({"model": "forwarded", "input": "alpha beta", "stream": true}),
    )
    .await;
    let id = first["id"].as_str().unwrap().to_owned();
    let read = app
        .client
        .get(app.url(&format!("/v1/responses/{id}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap(), first);

    // Continued, whole: the upstream gets the stored turn in `input`, and no id it never saw.
    let second = responses(
        &app,
        &json!({"model": "forwarded", "input": "gamma", "previous_response_id": id}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    let sent = app.last_upstream_json("/v1/responses");
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    assert_eq!(sent["model"], "up-responses");
    let input = sent["input"].as_array().unwrap();
    let texts: Vec<String> = input
        .iter()
        .map(|item| {
            let role = item["role"].as_str().unwrap_or("?");
            let content = &item["content"];
            let text = content
                .as_str()
                .or_else(|| content[0]["text"].as_str())
                .unwrap_or("");
            format!("{role}: {text}")
        })
        .collect();
    assert_eq!(
        texts.first().map(String::as_str),
        Some("user: alpha beta"),
        "{sent}"
    );
    assert_eq!(
        texts.last().map(String::as_str),
        Some("user: gamma"),
        "{sent}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("assistant: ")),
        "the earlier answer is in the input: {texts:?}"
    );

    // The whole answer is stored too.
    let second_id = second["id"].as_str().unwrap();
    let read = app
        .client
        .get(app.url(&format!("/v1/responses/{second_id}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    app.stop().await;
}

/// A forwarded stream whose answer is whole (its `response.completed` sent) while the upstream's body
/// stays open ends quietly when the gateway shuts down: no error event after the last one.
#[tokio::test]
async fn a_whole_answer_gets_no_error_event_when_the_gateway_stops_before_the_upstream_ends() {
    let mut options = TestOptions::default();
    options.settings.shutdown_grace = std::time::Duration::from_millis(200);
    let app = spawn_native_with(options).await;
    let mut response = responses(
        &app,
        &json!({"model": "forwarded", "input": "alpha", "stream": true,
                "mock": {"chunks": 3, "end_delay_ms": 20_000}}),
    )
    .send()
    .await
    .unwrap();
    let text = read_until(&mut response, "event: response.completed").await;
    let rest = tokio::spawn(async move {
        let mut rest = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    });
    app.stop().await;
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), rest)
        .await
        .expect("the stream did not end with the gateway")
        .unwrap();
    let after = text.split("event: response.completed").nth(1).unwrap_or("");
    assert!(
        !after.contains("event:") && rest.is_empty(),
        "events after response.completed: {after}{rest}"
    );
}
