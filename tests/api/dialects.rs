//! Anthropic and Gemini: `/v1/messages` ingress to every kind of provider, `anthropic` and
//! `gemini` providers behind `/v1/chat/completions`, streamed and not, with tools, errors in
//! the client's dialect, token counts, usage accounting and failover across kinds.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestOptions, UPSTREAM_KEY, spawn_with};

const CLAUDE_KEY: &str = "sk-ant-upstream-claude-0001";
const GEMINI_KEY: &str = "gm-upstream-gemini-0002";

/// The default `mock` provider (openai, model `gpt-test`) plus an anthropic provider
/// (`claude-test`), a gemini provider (`gemini-test`), and `mixed`: anthropic first, openai as
/// the fallback.
async fn spawn_dialects() -> TestApp {
    // The mock serves every dialect on one port; the gemini one lives under /v1beta.
    let extra = format!(
        r#"
[[providers]]
name = "claude"
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

[[models]]
name = "mixed"
max_attempts = 2
  [[models.routes]]
  provider = "claude"
  model = "claude-upstream"
  priority = 0
  [[models.routes]]
  provider = "mock"
  model = "mock-model"
  priority = 1
"#
    );
    spawn_with(TestOptions {
        extra_config: extra,
        ..TestOptions::default()
    })
    .await
}

fn messages_body(model: &str, text: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": text}],
        "mock": {"chunks": 5},
    })
}

fn tool_spec() -> Value {
    json!([
        {"name": "get_weather", "description": "weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "get_time", "description": "time", "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}}}
    ])
}

fn chat_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}}
    ])
}

/// The `(event name, data)` pairs of a server-sent event stream.
fn events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut name = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            (name, data)
        })
        .collect()
}

fn messages_post(app: &TestApp, body: Value) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &app.key)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
}

fn last_request_to(app: &TestApp, path_prefix: &str) -> llmgate::mock::RecordedRequest {
    app.last_upstream_request(path_prefix)
}

async fn usage_of(app: &TestApp, model: &str) -> llmgate::db::UsageCounts {
    app.flush_usage().await;
    app.usage_by_model()
        .await
        .into_iter()
        .find(|row| row.model.as_deref() == Some(model))
        .unwrap_or_else(|| panic!("no usage for {model}"))
        .counts
}

#[tokio::test]
async fn chat_completions_reach_an_anthropic_provider_and_come_back_as_openai() {
    let app = spawn_dialects().await;
    let response = app
        .chat(json!({
            "model": "claude-test",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one two three"}],
            "mock": {"chunks": 4, "cached_tokens": 1},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-route"], "claude");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-test");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "echo: one two three"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "be brief" + "one two three": 5 words, 1 of them cached; 4 output tokens.
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    assert_eq!(body["usage"]["completion_tokens"], 4);

    let upstream = last_request_to(&app, "/v1/messages");
    assert_eq!(upstream.headers["x-api-key"], CLAUDE_KEY);
    assert_eq!(upstream.headers["anthropic-version"], "2023-06-01");
    assert!(upstream.headers.get("authorization").is_none());
    let sent: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(sent["model"], "claude-upstream");
    assert_eq!(sent["system"][0]["text"], "be brief");
    assert!(sent["max_tokens"].as_u64().unwrap() > 0);

    let usage = usage_of(&app, "claude-test").await;
    assert_eq!(
        (
            usage.requests,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.estimated_requests
        ),
        (1, 5, 4, 1, 0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_streamed_chat_from_anthropic_keeps_interleaved_tool_calls_apart() {
    let app = spawn_dialects().await;
    let response = app
        .chat(json!({
            "model": "claude-test",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "weather and time in Paris"}],
            "tools": chat_tools(),
            "mock": {"tool_calls": 2, "chunks": 3},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let frames = events(&text);
    assert_eq!(frames.last().unwrap().1, "[DONE]", "{text}");
    let mut arguments = [String::new(), String::new()];
    let mut names = [String::new(), String::new()];
    let mut finish = None;
    let mut usage = None;
    for (_, data) in &frames[..frames.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if chunk["usage"].is_object() {
            usage = Some(chunk["usage"].clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(name) = call["function"]["name"].as_str() {
                names[index].push_str(name);
            }
            if let Some(part) = call["function"]["arguments"].as_str() {
                arguments[index].push_str(part);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_owned());
        }
    }
    assert_eq!(names, ["get_weather".to_owned(), "get_time".to_owned()]);
    for args in &arguments {
        let parsed: Value = serde_json::from_str(args).unwrap_or_else(|e| panic!("{args}: {e}"));
        assert!(parsed.is_object());
    }
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = usage.expect("the usage chunk the client asked for");
    assert_eq!(usage["prompt_tokens"], 5);
    let counts = usage_of(&app, "claude-test").await;
    assert_eq!(counts.prompt_tokens, 5);
    assert_eq!(
        counts.completion_tokens,
        usage["completion_tokens"].as_i64().unwrap()
    );
    assert_eq!(counts.estimated_requests, 0);
    app.stop().await;
}

#[tokio::test]
async fn chat_completions_reach_a_gemini_provider_streamed_and_not() {
    let app = spawn_dialects().await;
    let response = app
        .chat(json!({
            "model": "gemini-test",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "alpha beta"}],
            "max_tokens": 50,
            "temperature": 0.5,
            "mock": {"chunks": 3},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: alpha beta");
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    let upstream = last_request_to(&app, "/v1beta/");
    assert_eq!(
        upstream.path,
        "/v1beta/models/gemini-upstream:generateContent"
    );
    assert_eq!(upstream.headers["x-goog-api-key"], GEMINI_KEY);
    let sent: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "be brief");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 50);

    // Streamed, without asking for usage: none is shown, yet it is recorded.
    let response = app
        .chat(json!({
            "model": "gemini-test",
            "stream": true,
            "messages": [{"role": "user", "content": "alpha beta gamma"}],
            "mock": {"chunks": 6},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let frames = events(&text);
    assert_eq!(frames.last().unwrap().1, "[DONE]");
    let mut content = String::new();
    for (_, data) in &frames[..frames.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert!(chunk["usage"].is_null(), "usage was not asked for: {data}");
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(piece);
        }
    }
    assert_eq!(content, "echo: alpha beta gamma");
    assert!(
        last_request_to(&app, "/v1beta/")
            .path
            .ends_with(":streamGenerateContent?alt=sse")
    );
    let counts = usage_of(&app, "gemini-test").await;
    assert_eq!(counts.requests, 2);
    assert_eq!(counts.prompt_tokens, 4 + 3);
    assert_eq!(counts.completion_tokens, 3 + 6);

    // A safety block is a clear content_filter finish.
    let response = app
        .chat(json!({
            "model": "gemini-test",
            "messages": [{"role": "user", "content": "something"}],
            "mock": {"safety_block": true},
        }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["finish_reason"], "content_filter",
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn messages_to_an_openai_provider_are_translated_both_ways() {
    let app = spawn_dialects().await;
    let response = messages_post(&app, messages_body("gpt-test", "red green blue"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], "echo: red green blue");
    assert_eq!(body["stop_reason"], "end_turn");
    assert_eq!(body["usage"]["input_tokens"], 5);
    assert_eq!(body["usage"]["output_tokens"], 5);
    let upstream = last_request_to(&app, "/v1/chat/completions");
    assert_eq!(
        upstream.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    let sent: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(sent["model"], "mock-model");
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(sent["max_completion_tokens"], 100);

    // Streamed: Anthropic's exact event sequence.
    let mut body = messages_body("gpt-test", "red green blue");
    body["stream"] = json!(true);
    let response = messages_post(&app, body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let names: Vec<String> = events(&text)
        .into_iter()
        .map(|(name, _)| name.unwrap_or_default())
        .collect();
    assert_eq!(names.first().unwrap(), "message_start", "{text}");
    assert_eq!(names[1], "content_block_start");
    assert!(
        names[2..names.len() - 3]
            .iter()
            .all(|n| n == "content_block_delta")
    );
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let delta: Value = serde_json::from_str(
        &events(&text)
            .into_iter()
            .find(|(name, _)| name.as_deref() == Some("message_delta"))
            .unwrap()
            .1,
    )
    .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);

    let counts = usage_of(&app, "gpt-test").await;
    assert_eq!(
        (
            counts.requests,
            counts.prompt_tokens,
            counts.completion_tokens
        ),
        (2, 10, 10)
    );
    app.stop().await;
}

#[tokio::test]
async fn messages_to_an_anthropic_provider_pass_through_with_only_the_model_rewritten() {
    let app = spawn_dialects().await;
    let raw = r#"{"model":"claude-test","max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"hi there","cache_control":{"type":"ephemeral"}}]}],"mock":{"chunks":2},"top_k":5}"#;
    let response = app
        .client
        .post(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["usage"]["output_tokens"], 2);
    let upstream = last_request_to(&app, "/v1/messages");
    assert_eq!(
        std::str::from_utf8(&upstream.body).unwrap(),
        raw.replace("\"claude-test\"", "\"claude-upstream\"")
    );
    assert_eq!(
        upstream.headers["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
    assert_eq!(upstream.headers["x-api-key"], CLAUDE_KEY);

    // Streamed: the upstream's events, as sent; usage read on the way.
    let mut body = messages_body("claude-test", "one two");
    body["stream"] = json!(true);
    let response = messages_post(&app, body).send().await.unwrap();
    let text = response.text().await.unwrap();
    let names: Vec<String> = events(&text)
        .into_iter()
        .filter_map(|(name, _)| name)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let counts = usage_of(&app, "claude-test").await;
    assert_eq!(counts.requests, 2);
    // "hi there" (2) + "be brief one two" (4); 2 + 5 output tokens.
    assert_eq!(counts.prompt_tokens, 6);
    assert_eq!(counts.completion_tokens, 7);
    assert_eq!(counts.estimated_requests, 0);
    app.stop().await;
}

#[tokio::test]
async fn messages_with_tools_to_gemini_stream_tool_use_blocks_in_order() {
    let app = spawn_dialects().await;
    let body = json!({
        "model": "gemini-test",
        "max_tokens": 200,
        "stream": true,
        "tools": tool_spec(),
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "weather and time"}],
        "mock": {"tool_calls": 2},
    });
    let response = messages_post(&app, body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let frames = events(&text);
    let mut starts = Vec::new();
    let mut inputs: std::collections::BTreeMap<u64, String> = Default::default();
    let mut stop_reason = None;
    for (name, data) in &frames {
        let event: Value = serde_json::from_str(data).unwrap();
        match name.as_deref() {
            Some("content_block_start") => {
                starts.push((
                    event["index"].as_u64().unwrap(),
                    event["content_block"].clone(),
                ));
            }
            Some("content_block_delta") if event["delta"]["type"] == "input_json_delta" => {
                inputs
                    .entry(event["index"].as_u64().unwrap())
                    .or_default()
                    .push_str(event["delta"]["partial_json"].as_str().unwrap());
            }
            Some("message_delta") => stop_reason = Some(event["delta"]["stop_reason"].clone()),
            _ => {}
        }
    }
    let tools: Vec<_> = starts
        .iter()
        .filter(|(_, block)| block["type"] == "tool_use")
        .collect();
    assert_eq!(tools.len(), 2, "{text}");
    assert_eq!(tools[0].1["name"], "get_weather");
    assert_eq!(tools[1].1["name"], "get_time");
    assert!(tools[0].0 < tools[1].0);
    for (index, _) in &tools {
        let input = inputs.get(index).map_or("{}", String::as_str);
        assert!(serde_json::from_str::<Value>(input).unwrap().is_object());
    }
    assert_eq!(stop_reason, Some(json!("tool_use")));
    let sent: Value = serde_json::from_slice(&last_request_to(&app, "/v1beta/").body).unwrap();
    assert_eq!(
        sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY",
        "{sent}"
    );
    app.stop().await;
}

#[tokio::test]
async fn errors_on_the_messages_route_take_anthropics_shape() {
    let app = spawn_dialects().await;
    let check = |status: u16, kind: &'static str| {
        move |(got, body): (u16, Value)| {
            assert_eq!(got, status, "{body}");
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], kind, "{body}");
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }
    };
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    // No key, an unknown key.
    check(401, "authentication_error")(
        send(
            app.client
                .post(app.url("/v1/messages"))
                .json(&messages_body("gpt-test", "x")),
        )
        .await,
    );
    check(401, "authentication_error")(
        send(
            app.client
                .post(app.url("/v1/messages"))
                .header("x-api-key", "sk-lg-nope")
                .json(&messages_body("gpt-test", "x")),
        )
        .await,
    );
    // Unknown model; malformed body.
    check(404, "not_found_error")(send(messages_post(&app, messages_body("nope", "x"))).await);
    check(400, "invalid_request_error")(
        send(messages_post(
            &app,
            json!({"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]}),
        ))
        .await,
    );
    // The OpenAI upstream's own 400, translated; an upstream that keeps failing: overloaded.
    let mut body = messages_body("gpt-test", "x");
    body["mock"] = json!({"status": 400});
    check(400, "invalid_request_error")(send(messages_post(&app, body)).await);
    let mut body = messages_body("gemini-test", "x");
    body["mock"] = json!({"status": 500});
    let (status, error) = send(messages_post(&app, body)).await;
    assert!(status >= 500, "{error}");
    assert_eq!(error["type"], "error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request id")
    );
    // The OpenAI routes keep OpenAI's shape.
    let response = app
        .chat(json!({"model": "nope", "messages": []}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    app.stop().await;
}

#[tokio::test]
async fn count_tokens_is_forwarded_to_anthropic_and_counted_locally_otherwise() {
    let app = spawn_dialects().await;
    let body = json!({
        "model": "claude-test",
        "system": "be brief",
        "messages": [{"role": "user", "content": "how many tokens is this"}],
    });
    let count = |body: Value| {
        let request = app
            .client
            .post(app.url("/v1/messages/count_tokens"))
            .header("x-api-key", &app.key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let counted = count(body.clone()).await;
    let upstream = last_request_to(&app, "/v1/messages/count_tokens");
    let sent: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(sent["model"], "claude-upstream");
    let expected =
        llmgate::translate::count_message_tokens(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(counted["input_tokens"], expected);

    let before = app.mock.request_count();
    let mut local = body.clone();
    local["model"] = json!("gpt-test");
    let counted = count(local).await;
    assert!(counted["input_tokens"].as_u64().unwrap() >= 8, "{counted}");
    assert_eq!(
        app.mock.request_count(),
        before,
        "counted without the upstream"
    );
    // Counting tokens spends none.
    let counts = usage_of(&app, "gpt-test").await;
    assert_eq!((counts.prompt_tokens, counts.completion_tokens), (0, 0));
    app.stop().await;
}

#[tokio::test]
async fn a_model_fails_over_from_an_anthropic_route_to_an_openai_one() {
    let app = spawn_dialects().await;
    let response = app
        .chat(json!({
            "model": "mixed",
            "messages": [{"role": "user", "content": "one two"}],
            "mock": {"status_for_key": {CLAUDE_KEY: 503}, "chunks": 2},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-route"], "mock");
    assert_eq!(response.headers()["x-llmgate-attempts"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: one two");
    assert!(app.mock.requests().iter().any(|r| r.path == "/v1/messages"));

    // Embeddings exist only in OpenAI's API: the anthropic route is passed over.
    let response = app
        .post(
            "/v1/embeddings",
            json!({"model": "mixed", "input": "hello", "mock": {"status_for_key": {CLAUDE_KEY: 503}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-route"], "mock");
    let response = app
        .post(
            "/v1/embeddings",
            json!({"model": "claude-test", "input": "hello"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/embeddings is not served"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stream_cut_mid_answer_ends_with_an_error_event_in_the_clients_dialect() {
    let app = spawn_dialects().await;
    // Messages → anthropic, passed through: Anthropic's `error` event.
    let mut body = messages_body("claude-test", "one two three four");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 6, "cut_after": 2});
    let text = messages_post(&app, body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (name, data) = events(&text).pop().unwrap();
    assert_eq!(name.as_deref(), Some("error"), "{text}");
    let error: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(error["type"], "error");
    // Messages → openai, translated: the error event alone, as Anthropic ends a stream.
    let mut body = messages_body("gpt-test", "one two three four");
    body["stream"] = json!(true);
    body["mock"] = json!({"chunks": 6, "cut_after": 2});
    let text = messages_post(&app, body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names: Vec<String> = events(&text)
        .into_iter()
        .filter_map(|(name, _)| name)
        .collect();
    assert_eq!(
        names[names.len() - 2..],
        ["content_block_delta", "error"],
        "{text}"
    );
    // Chat → anthropic, translated: an OpenAI error frame, never a silent cut.
    let text = app
        .chat(json!({
            "model": "claude-test",
            "stream": true,
            "messages": [{"role": "user", "content": "one two three four"}],
            "mock": {"chunks": 6, "cut_after": 2},
        }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (_, data) = events(&text).pop().unwrap();
    let error: Value = serde_json::from_str(&data).unwrap();
    assert!(error["error"]["message"].is_string(), "{text}");
    // Each cut request is still recorded, with what was generated so far.
    let counts = usage_of(&app, "claude-test").await;
    assert_eq!(counts.requests, 2);
    assert!(counts.completion_tokens > 0);
    app.stop().await;
}

/// Claude Code's request as it sends it for a non-Claude model name (a `system` message inside
/// `messages`, `context_management`, `output_config`, `thinking`, cached system blocks, tools,
/// a 150-character `metadata.user_id`), and for a Claude one.
const CLAUDE_CODE_BODY: &str =
    include_str!("../../src/translate/fixtures/anthropic/request_claude_code.json");
const CLAUDE_CODE_CLAUDE_BODY: &str =
    include_str!("../../src/translate/fixtures/anthropic/request_claude_code_claude.json");

/// Claude Code reaches a model of every provider kind whatever the model's name: with a
/// non-Claude name it sends a `system` message inside `messages`, which an OpenAI-compatible
/// upstream gets in place, Gemini in its system instruction and Anthropic folded into `system`.
#[tokio::test]
async fn claude_code_reaches_every_kind_of_provider_with_claude_and_other_model_names() {
    // Each public name (a Claude one and others, as a team might choose) routed to each kind.
    let mut extra = String::new();
    for (name, provider, upstream) in [
        ("claude-sonnet-4-5-20250929", "claude", "claude-upstream"),
        ("claude-opus-4-1", "mock", "mock-model"),
        ("claude-haiku-4-5", "gem", "gemini-upstream"),
        ("qwen3-coder", "claude", "claude-upstream"),
        ("team-coder", "mock", "mock-model"),
        ("glm-4.6", "gem", "gemini-upstream"),
    ] {
        extra.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\n  [[models.routes]]\n  provider = \"{provider}\"\n  model = \"{upstream}\"\n"
        ));
    }
    let app = spawn_with(TestOptions {
        extra_config: format!(
            r#"
[[providers]]
name = "claude"
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
{extra}"#
        ),
        ..TestOptions::default()
    })
    .await;
    let cases = [
        (
            "claude-sonnet-4-5-20250929",
            CLAUDE_CODE_CLAUDE_BODY,
            "/v1/messages",
        ),
        (
            "claude-opus-4-1",
            CLAUDE_CODE_CLAUDE_BODY,
            "/v1/chat/completions",
        ),
        ("claude-haiku-4-5", CLAUDE_CODE_CLAUDE_BODY, "/v1beta/"),
        ("qwen3-coder", CLAUDE_CODE_BODY, "/v1/messages"),
        ("team-coder", CLAUDE_CODE_BODY, "/v1/chat/completions"),
        ("glm-4.6", CLAUDE_CODE_BODY, "/v1beta/"),
    ];
    for (model, fixture, upstream_path) in cases {
        for stream in [true, false] {
            let mut body: Value = serde_json::from_str(fixture).unwrap();
            body["model"] = json!(model);
            body["stream"] = json!(stream);
            body["mock"] = json!({"chunks": 3});
            let response = messages_post(&app, body)
                .header(
                    "anthropic-beta",
                    "context-management-2025-06-27,effort-2025-11-24",
                )
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_eq!(status, 200, "{model} (stream {stream}): {text}");
            if stream {
                let names: Vec<String> = events(&text).into_iter().filter_map(|(n, _)| n).collect();
                assert_eq!(
                    names.first().map(String::as_str),
                    Some("message_start"),
                    "{model}: {text}"
                );
                assert_eq!(
                    names.last().map(String::as_str),
                    Some("message_stop"),
                    "{model}: {text}"
                );
            } else {
                let answer: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(answer["type"], "message", "{model}: {text}");
            }
            let sent: Value =
                serde_json::from_slice(&last_request_to(&app, upstream_path).body).unwrap();
            let agents = "Available agent types";
            match upstream_path {
                "/v1/messages" => {
                    // Anthropic-compatible upstreams take only user and assistant turns.
                    let roles: Vec<&str> = sent["messages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m["role"].as_str().unwrap())
                        .collect();
                    assert!(!roles.contains(&"system"), "{model}: {roles:?}");
                    let system = sent["system"].to_string();
                    assert_eq!(
                        system.contains(agents),
                        fixture == CLAUDE_CODE_BODY,
                        "{system}"
                    );
                    // Everything else passes through, the client's cache breakpoints included.
                    assert_eq!(
                        sent["context_management"],
                        json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]})
                    );
                    assert_eq!(
                        sent["system"][1]["cache_control"],
                        json!({"type": "ephemeral"})
                    );
                }
                "/v1/chat/completions" => {
                    assert!(sent["user"].as_str().unwrap().len() <= 64, "{sent}");
                    let in_place = sent["messages"].as_array().unwrap().iter().any(|m| {
                        m["role"] == "system"
                            && m["content"].as_str().is_some_and(|c| c.starts_with(agents))
                    });
                    assert_eq!(in_place, fixture == CLAUDE_CODE_BODY, "{sent}");
                }
                _ => {
                    let instruction = sent["systemInstruction"].to_string();
                    assert_eq!(
                        instruction.contains(agents),
                        fixture == CLAUDE_CODE_BODY,
                        "{instruction}"
                    );
                }
            }
        }
    }
    app.stop().await;
}

/// A translated stream that fails mid-answer ends the way Anthropic's do: with the `error`
/// event alone, no `content_block_stop` before it (Claude Code then retries without
/// streaming); its `message_start` carries the prompt's size, not zero.
#[tokio::test]
async fn a_failed_translated_messages_stream_ends_with_the_error_event_alone() {
    let app = spawn_dialects().await;
    for model in ["gpt-test", "gemini-test"] {
        let mut body = messages_body(model, "one two three four five six seven eight");
        body["stream"] = json!(true);
        body["mock"] = json!({"chunks": 6, "cut_after": 2});
        let text = messages_post(&app, body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let events = events(&text);
        let names: Vec<&str> = events.iter().filter_map(|(n, _)| n.as_deref()).collect();
        assert_eq!(names.last(), Some(&"error"), "{model}: {text}");
        assert_ne!(
            names[names.len() - 2],
            "content_block_stop",
            "{model}: {text}"
        );
        let start: Value = serde_json::from_str(&events[0].1).unwrap();
        assert!(
            start["message"]["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{model}: {text}"
        );
    }
    app.stop().await;
}
