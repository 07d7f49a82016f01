//! OpenAI's Responses API, `POST /v1/responses`: translated to an openai, anthropic and gemini
//! provider, streamed and not, with tools, errors in OpenAI's shape and usage accounting.

use serde_json::{Value, json};

use crate::helpers::{CLAUDE_AND_GEMINI_PROVIDERS, TestApp, TestOptions, read_until, spawn_with};

/// The models of the anthropic provider (`claude-test`) and the gemini provider
/// (`gemini-test`) of [`CLAUDE_AND_GEMINI_PROVIDERS`].
const KIND_MODELS: &str = r#"
[[models]]
name = "claude-test"
  [[models.routes]]
  provider = "claude"
  model = "claude-upstream"

[[models]]
name = "gemini-test"
  [[models.routes]]
  provider = "gem"
  model = "gemini-upstream"
"#;

/// Extra config: an anthropic and a gemini provider with a model each, beside the default
/// `mock` provider (openai, model `gpt-test`).
pub fn provider_kinds() -> String {
    format!("{CLAUDE_AND_GEMINI_PROVIDERS}{KIND_MODELS}")
}

async fn spawn_kinds() -> TestApp {
    spawn_with(TestOptions {
        extra_config: provider_kinds(),
        ..TestOptions::default()
    })
    .await
}

const MODELS: [(&str, &str); 3] = [
    ("gpt-test", "/v1/chat/completions"),
    ("claude-test", "/v1/messages"),
    ("gemini-test", "/v1beta/"),
];

fn responses(app: &TestApp, body: Value) -> reqwest::RequestBuilder {
    app.post("/v1/responses", body)
}

/// The `(event name, data)` pairs of a server-sent event stream.
pub(crate) fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = value.to_owned();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data}: {e}"));
            (name, data)
        })
        .collect()
}

pub fn last_request_to(app: &TestApp, path_prefix: &str) -> Value {
    app.last_upstream_json(path_prefix)
}

/// The first `function_call` item of a response's output.
pub fn function_call_of(response: &Value) -> Value {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function call in {response}"))
        .clone()
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "name": "get_weather", "description": "weather",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"type": "web_search"}
    ])
}

#[tokio::test]
async fn a_whole_answer_comes_back_as_a_response_from_every_kind_of_provider() {
    let app = spawn_kinds().await;
    for (model, upstream_path) in MODELS {
        let response = responses(
            &app,
            json!({
                "model": model,
                "instructions": "be brief",
                "input": "one two three",
                "max_output_tokens": 50,
                "mock": {"chunks": 4},
            }),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "response", "{model}: {body}");
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("resp_") && id.len() > 20, "{id}");
        assert!(body["created_at"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(body["status"], "completed", "{model}: {body}");
        assert_eq!(body["model"], model);
        assert_eq!(body["output"][0]["type"], "message", "{model}: {body}");
        assert_eq!(
            body["output"][0]["content"][0]["text"], "echo: one two three",
            "{model}: {body}"
        );
        assert_eq!(body["usage"]["output_tokens"], 4, "{model}: {body}");
        assert!(body["usage"]["input_tokens"].as_u64().unwrap() > 0);
        // The upstream got its own model name, in its own dialect.
        let sent = last_request_to(&app, upstream_path);
        match upstream_path {
            "/v1beta/" => assert!(sent["contents"].is_array(), "{sent}"),
            _ => assert!(
                sent["model"] == "mock-model" || sent["model"] == "claude-upstream",
                "{sent}"
            ),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_streamed_answer_is_the_responses_event_sequence_from_every_kind_of_provider() {
    let app = spawn_kinds().await;
    for (model, _) in MODELS {
        let response = responses(
            &app,
            json!({"model": model, "input": "alpha beta gamma", "stream": true, "mock": {"chunks": 3}}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let text = response.text().await.unwrap();
        assert!(!text.contains("[DONE]"), "{text}");
        let events = events(&text);
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names[..2],
            ["response.created", "response.in_progress"],
            "{model}: {text}"
        );
        assert_eq!(names.last(), Some(&"response.completed"), "{model}: {text}");
        for expected in [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
        ] {
            assert!(
                names.contains(&expected),
                "{model}: no {expected} in {text}"
            );
        }
        let mut sequence = Vec::new();
        let mut text_out = String::new();
        for (name, data) in &events {
            assert_eq!(data["type"], name.as_str());
            sequence.push(data["sequence_number"].as_u64().unwrap());
            if name == "response.output_text.delta" {
                text_out.push_str(data["delta"].as_str().unwrap());
            }
        }
        assert!(
            sequence.windows(2).all(|pair| pair[0] < pair[1]),
            "{sequence:?}"
        );
        assert_eq!(text_out, "echo: alpha beta gamma", "{model}");
        let done = &events.last().unwrap().1["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["usage"]["output_tokens"], 3, "{model}: {done}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_function_call_goes_round_trip_and_hosted_tools_are_named_in_a_header() {
    let app = spawn_kinds().await;
    for (model, upstream_path) in [MODELS[0], MODELS[1]] {
        let response = responses(
            &app,
            json!({
                "model": model,
                "input": "weather in Paris",
                "tools": weather_tools(),
                "mock": {"tool_calls": 1, "chunks": 2},
            }),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(response.headers()["x-llmgate-dropped-tools"], "web_search");
        let body: Value = response.json().await.unwrap();
        let call = function_call_of(&body);
        assert_eq!(call["name"], "get_weather");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert!(arguments.is_object());
        let call_id = call["call_id"].as_str().unwrap().to_owned();
        // Only the function reached the upstream.
        let sent = last_request_to(&app, upstream_path);
        assert_eq!(sent["tools"].as_array().unwrap().len(), 1, "{sent}");

        // The call and its output go back as input; the answer is text again.
        let response = responses(
            &app,
            json!({
                "model": model,
                "input": [
                    {"role": "user", "content": "weather in Paris"},
                    {"type": "function_call", "call_id": call_id, "name": "get_weather", "arguments": call["arguments"]},
                    {"type": "function_call_output", "call_id": call_id, "output": "sunny"},
                    {"role": "user", "content": "thanks then"}
                ],
                "tools": weather_tools(),
                "mock": {"chunks": 2},
            }),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["output"][0]["content"][0]["text"], "echo: thanks then",
            "{model}: {body}"
        );
        let sent = last_request_to(&app, upstream_path).to_string();
        assert!(sent.contains("sunny") && sent.contains(&call_id), "{sent}");
    }
    app.stop().await;
}

#[tokio::test]
async fn usage_is_recorded_like_chats() {
    let app = spawn_kinds().await;
    for stream in [false, true] {
        let response = responses(
            &app,
            json!({"model": "gpt-test", "input": "one two three", "stream": stream, "mock": {"chunks": 5}}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    app.flush_usage().await;
    let counts = app
        .usage_by_model()
        .await
        .into_iter()
        .find(|row| row.model.as_deref() == Some("gpt-test"))
        .expect("usage for gpt-test")
        .counts;
    assert_eq!(
        (
            counts.requests,
            counts.prompt_tokens,
            counts.completion_tokens,
            counts.estimated_requests
        ),
        (2, 6, 10, 0)
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_take_openais_shape() {
    let app = spawn_kinds().await;
    // An unknown model.
    let response = responses(&app, json!({"model": "nope", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");

    // A tool_choice that forces a tool only OpenAI hosts.
    for model in ["gpt-test", "claude-test"] {
        let response = responses(
            &app,
            json!({"model": model, "input": "x", "tools": weather_tools(), "tool_choice": {"type": "web_search"}}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 400, "{model}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("web_search"), "{body}");
    }

    // Continuing a response that was never stored is refused as OpenAI refuses it.
    let response = responses(
        &app,
        json!({"model": "gpt-test", "input": "x", "previous_response_id": "resp_123"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "previous_response_not_found",
        "{body}"
    );
    assert_eq!(body["error"]["param"], "previous_response_id", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Previous response with id 'resp_123' not found"),
        "{body}"
    );

    // The upstream's own 400, in OpenAI's shape.
    let response = responses(
        &app,
        json!({"model": "claude-test", "input": "x", "mock": {"status": 400}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_answer_ends_with_response_failed() {
    let app = spawn_kinds().await;
    for model in ["gpt-test", "claude-test"] {
        let text = responses(
            &app,
            json!({"model": model, "input": "one two three four", "stream": true, "mock": {"chunks": 6, "cut_after": 2}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        let events = events(&text);
        let (name, data) = events.last().unwrap();
        assert_eq!(name, "response.failed", "{model}: {text}");
        assert_eq!(data["response"]["status"], "failed");
        assert!(data["response"]["error"]["message"].is_string());
    }
    app.stop().await;
}

/// Codex closes a Responses stream as soon as `response.completed` arrives, which may be before
/// the upstream's body has ended: the request is recorded whole, with the upstream's usage,
/// not as a client that left mid-answer with an estimate.
#[tokio::test]
async fn a_client_that_hangs_up_on_response_completed_gets_the_reported_usage() {
    let app = spawn_kinds().await;
    for model in ["gpt-test", "claude-test"] {
        // Three completion tokens reported for a reply that would be estimated at more.
        let mut response = responses(
            &app,
            json!({"model": model, "input": "alpha", "stream": true, "mock": {
                "chunks": 3, "end_delay_ms": 10_000,
                "content": "one two three four five six seven eight nine ten eleven twelve"}}),
        )
        .send()
        .await
        .unwrap();
        read_until(&mut response, "event: response.completed").await;
        drop(response);
    }
    app.flush_usage().await;
    for model in ["gpt-test", "claude-test"] {
        let counts = app
            .usage_by_model()
            .await
            .into_iter()
            .find(|row| row.model.as_deref() == Some(model))
            .unwrap_or_else(|| panic!("no usage for {model}"))
            .counts;
        assert_eq!(
            (
                counts.requests,
                counts.completion_tokens,
                counts.estimated_requests,
                counts.errors
            ),
            (1, 3, 0, 0),
            "{model}"
        );
    }
    app.stop().await;
}
