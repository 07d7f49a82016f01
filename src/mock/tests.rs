//! Tests of the mock upstream over real HTTP on 127.0.0.1.

#![expect(
    clippy::disallowed_methods,
    reason = "tests spawn their own tasks and clients"
)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{MockConfig, MockHandle, spawn};
use crate::translate::StreamTranslator as _;

async fn start(config: MockConfig) -> MockHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn(listener, config).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post(mock: &MockHandle, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", mock.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(text: &str, extra: Value) -> Value {
    let mut body = json!({"model": "m1", "messages": [{"role": "user", "content": text}]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// The `data:` payloads of an event stream, in order.
fn data_frames(text: &str) -> Vec<&str> {
    assert!(
        text.ends_with("\n\n") || text.is_empty(),
        "torn frame at the end: {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|frame| frame.strip_prefix("data: ").unwrap())
        .collect()
}

fn parsed(frames: &[&str]) -> Vec<Value> {
    frames
        .iter()
        .map(|frame| serde_json::from_str(frame).unwrap())
        .collect()
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually(limit: Duration, check: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

#[tokio::test]
async fn a_chat_completion_has_the_openai_shape_and_exact_usage() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "m1", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hello there world"}]}
    ]});
    let response = post(&mock, "/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{answer}"
    );
    assert!(answer["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "m1");
    let choice = &answer["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "echo: hello there world");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 8, "total_tokens": 13})
    );
}

#[tokio::test]
async fn knobs_fix_the_content_and_drop_the_usage() {
    let mock = start(MockConfig::default()).await;
    let body = chat(
        "hi",
        json!({"mock": {"content": "fixed reply", "no_usage": true}}),
    );
    let answer: Value = post(&mock, "/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "fixed reply");
    assert!(answer.get("usage").is_none(), "{answer}");
}

#[tokio::test]
async fn a_stream_without_include_usage_has_role_pieces_finish_and_done() {
    let mock = start(MockConfig::default()).await;
    let response = post(
        &mock,
        "/chat/completions",
        chat("stream me now", json!({"stream": true})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let frames = data_frames(&text);
    assert_eq!(frames.len(), 1 + 8 + 1 + 1, "{text}");
    assert_eq!(*frames.last().unwrap(), "[DONE]");
    let chunks = parsed(&frames[..frames.len() - 1]);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "m1");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(
            chunk.get("usage").is_none(),
            "usage without include_usage: {chunk}"
        );
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let pieces: Vec<&str> = chunks[1..9]
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert!(pieces.iter().all(|piece| !piece.is_empty()), "{pieces:?}");
    assert_eq!(pieces.concat(), "echo: stream me now");
    let finish = &chunks[9]["choices"][0];
    assert_eq!(finish["delta"], json!({}));
    assert_eq!(finish["finish_reason"], "stop");
    assert_eq!(mock.disconnects(), 0, "a finished stream is no disconnect");
}

#[tokio::test]
async fn a_stream_with_include_usage_ends_with_a_usage_chunk() {
    let mock = start(MockConfig::default()).await;
    let extra =
        json!({"stream": true, "stream_options": {"include_usage": true}, "mock": {"chunks": 3}});
    let response = post(&mock, "/chat/completions", chat("two words", extra)).await;
    let text = response.text().await.unwrap();
    let frames = data_frames(&text);
    assert_eq!(frames.len(), 1 + 3 + 1 + 1 + 1, "{text}");
    assert_eq!(*frames.last().unwrap(), "[DONE]");
    let chunks = parsed(&frames[..frames.len() - 1]);
    let (usage_chunk, others) = chunks.split_last().unwrap();
    for chunk in others {
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
        assert!(chunk.get("usage").is_some(), "{chunk}");
    }
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
    );

    let extra = json!({"stream": true, "stream_options": {"include_usage": true}, "mock": {"no_usage": true}});
    let text = post(&mock, "/chat/completions", chat("two words", extra))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("usage"), "{text}");
}

#[tokio::test]
async fn a_short_reply_is_padded_to_the_chunk_count() {
    let mock = start(MockConfig::default()).await;
    let extra = json!({"stream": true, "mock": {"chunks": 4, "content": "é"}});
    let text = post(&mock, "/chat/completions", chat("x", extra))
        .await
        .text()
        .await
        .unwrap();
    let frames = data_frames(&text);
    let chunks = parsed(&frames[1..5]);
    let pieces: Vec<&str> = chunks
        .iter()
        .map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["é", " ", " ", " "]);
}

#[tokio::test]
async fn frames_arrive_one_at_a_time() {
    let mock = start(MockConfig {
        chunk_delay: Duration::from_millis(40),
        ..MockConfig::default()
    })
    .await;
    let started = Instant::now();
    let mut response = post(
        &mock,
        "/chat/completions",
        chat("a b c", json!({"stream": true, "mock": {"chunks": 3}})),
    )
    .await;
    let mut reads = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        reads.push(String::from_utf8(chunk.to_vec()).unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
    assert!(reads.len() >= 4, "frames were batched: {reads:?}");
    assert_eq!(
        data_frames(&reads[0]).len(),
        1,
        "the role frame comes alone: {reads:?}"
    );
    assert!(reads.concat().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn cut_after_breaks_the_connection_mid_stream() {
    let mock = start(MockConfig::default()).await;
    let mut response = post(
        &mock,
        "/chat/completions",
        chat(
            "cut me",
            json!({"stream": true, "mock": {"chunks": 6, "cut_after": 2}}),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    let broken = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broken, "the stream ended cleanly: {text}");
    let frames = parsed(&data_frames(&text));
    assert_eq!(frames.len(), 3, "{text}");
    assert!(
        frames
            .iter()
            .all(|frame| frame["choices"][0]["finish_reason"].is_null())
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(
        mock.disconnects(),
        0,
        "a deliberate cut is no client disconnect"
    );
}

#[tokio::test]
async fn a_client_leaving_mid_stream_counts_as_a_disconnect() {
    let mock = start(MockConfig::default()).await;
    let extra = json!({"stream": true, "mock": {"chunks": 50, "chunk_delay_ms": 20}});
    let mut response = post(&mock, "/chat/completions", chat("long answer", extra)).await;
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    assert!(
        eventually(Duration::from_secs(5), || mock.disconnects() == 1).await,
        "no disconnect seen"
    );
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn the_status_knob_and_fail_status_answer_openai_errors() {
    let mock = start(MockConfig::default()).await;
    let response = post(
        &mock,
        "/chat/completions",
        chat("hi", json!({"mock": {"status": 500}})),
    )
    .await;
    assert_eq!(response.status(), 500);
    assert!(response.headers().get("retry-after").is_none());
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");
    assert!(error["error"]["message"].is_string());

    let response = post(
        &mock,
        "/chat/completions",
        chat(
            "hi",
            json!({"stream": true, "mock": {"status": 429, "retry_after": 2}}),
        ),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");

    mock.set_config(MockConfig {
        fail_status: Some(429),
        ..MockConfig::default()
    });
    let response = post(&mock, "/embeddings", json!({"input": "x"})).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let response = post(
        &mock,
        "/chat/completions",
        chat("hi", json!({"mock": {"status": 200}})),
    )
    .await;
    assert_eq!(
        response.status(),
        200,
        "a 2xx knob escapes the failing config"
    );
    assert_eq!(mock.request_count(), 4);
}

#[tokio::test]
async fn latency_delays_the_answer_and_hang_never_answers() {
    let mock = start(MockConfig::default()).await;
    let started = Instant::now();
    let response = post(
        &mock,
        "/chat/completions",
        chat("hi", json!({"mock": {"latency_ms": 100}})),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(100));

    let hung = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .timeout(Duration::from_millis(200))
        .json(&chat("hi", json!({"mock": {"hang": true}})))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn bad_bodies_paths_and_knobs_are_refused() {
    let mock = start(MockConfig::default()).await;
    let response = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["param"], Value::Null);
    assert_eq!(error["error"]["code"], Value::Null);
    assert!(error["error"]["message"].is_string());

    let response = post(
        &mock,
        "/chat/completions",
        chat("hi", json!({"mock": {"chunk": 2}})),
    )
    .await;
    assert_eq!(response.status(), 400, "a misspelt knob fails loudly");
    let response = post(&mock, "/nope", json!({})).await;
    assert_eq!(response.status(), 404);
    let response = client()
        .get(format!("{}/chat/completions", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(mock.request_count(), 4);
}

#[tokio::test]
async fn models_lists_the_echo_model() {
    let mock = start(MockConfig::default()).await;
    let list: Value = client()
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["id"], "demo-echo");
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "llmgate-mock");
}

#[tokio::test]
async fn legacy_completions_answer_whole_and_streamed() {
    let mock = start(MockConfig::default()).await;
    let answer: Value = post(
        &mock,
        "/completions",
        json!({"model": "m2", "prompt": ["first", "say this"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(answer["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["model"], "m2");
    assert_eq!(answer["choices"][0]["text"], "echo: say this");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11})
    );

    let body = json!({"prompt": "say this", "stream": true, "stream_options": {"include_usage": true}, "mock": {"chunks": 2}});
    let text = post(&mock, "/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let frames = data_frames(&text);
    assert_eq!(frames.len(), 2 + 1 + 1 + 1, "{text}");
    let chunks = parsed(&frames[..4]);
    let streamed: String = chunks[..2]
        .iter()
        .map(|chunk| chunk["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, "echo: say this");
    assert!(
        chunks
            .iter()
            .all(|chunk| chunk["object"] == "text_completion")
    );
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        chunks[3]["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4})
    );
}

#[tokio::test]
async fn embeddings_are_deterministic_per_input() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "e1", "input": ["a b", "c", "a b"]});
    let answer: Value = post(&mock, "/embeddings", body).await.json().await.unwrap();
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "e1");
    let data = answer["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (index, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], index);
        assert_eq!(item["embedding"].as_array().unwrap().len(), 8);
    }
    assert_eq!(data[0]["embedding"], data[2]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 5, "total_tokens": 5})
    );

    let body = json!({"input": [[1, 2, 3]], "encoding_format": "base64"});
    let answer: Value = post(&mock, "/embeddings", body).await.json().await.unwrap();
    let encoded = answer["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), 44, "8 little-endian f32s in base64");
    assert_eq!(answer["usage"]["prompt_tokens"], 3);
}

#[tokio::test]
async fn requests_are_recorded_until_recording_is_turned_off() {
    let mock = start(MockConfig::default()).await;
    let raw = r#"{"model":"m1","messages":[{"role":"user","content":"ü"}],"extra":[1,2.50]}"#;
    let response = client()
        .post(format!("{}/chat/completions?trace=1", mock.base_url()))
        .header("content-type", "application/json")
        .header("x-test", "yes")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/chat/completions?trace=1");
    assert_eq!(seen[0].headers["x-test"], "yes");
    assert_eq!(seen[0].body, raw.as_bytes());

    mock.set_config(MockConfig {
        record: false,
        ..MockConfig::default()
    });
    let response = post(&mock, "/chat/completions", chat("hi", json!({}))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn serve_stops_on_shutdown_and_releases_hung_requests() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::serve(listener, MockConfig::default(), async {
        stopped.await.ok();
    }));
    let hung = tokio::spawn(
        client()
            .post(url)
            .json(&chat("hi", json!({"mock": {"hang": true}})))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(served.unwrap().unwrap().is_ok());
    assert_eq!(hung.await.unwrap().unwrap().status(), 503);
}

// ---------------------------------------------------------------------------------------------
// Tool calls and cache knobs in the OpenAI dialect.

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "get_time"}}
    ])
}

#[tokio::test]
async fn the_tool_calls_knob_answers_with_tool_calls() {
    let mock = start(MockConfig::default()).await;
    let body = chat(
        "weather please",
        json!({"tools": weather_tools(), "mock": {"tool_calls": 3, "cached_tokens": 1}}),
    );
    let answer: Value = post(&mock, "/chat/completions", body)
        .await
        .json()
        .await
        .unwrap();
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    let names: Vec<&str> = calls
        .iter()
        .map(|call| call["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_time", "get_weather"]);
    for (index, call) in calls.iter().enumerate() {
        assert_eq!(call["id"], format!("call_mock_{index}"));
        assert_eq!(call["type"], "function");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(
            arguments,
            json!({"index": index, "text": "echo: weather please"})
        );
    }
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 8, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 1}})
    );

    // Without tools in the request, the knob changes nothing.
    let answer: Value = post(
        &mock,
        "/chat/completions",
        chat("hi", json!({"mock": {"tool_calls": 2}})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: hi");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn streamed_tool_calls_are_interleaved_by_index() {
    let mock = start(MockConfig::default()).await;
    let extra = json!({"stream": true, "stream_options": {"include_usage": true}, "tools": weather_tools(), "mock": {"tool_calls": 2, "chunks": 4}});
    let text = post(&mock, "/chat/completions", chat("a b", extra))
        .await
        .text()
        .await
        .unwrap();
    let frames = data_frames(&text);
    assert_eq!(*frames.last().unwrap(), "[DONE]");
    let chunks = parsed(&frames[..frames.len() - 1]);
    let mut arguments = [String::new(), String::new()];
    let mut order = Vec::new();
    for chunk in &chunks {
        for call in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if let Some(id) = call["id"].as_str() {
                assert_eq!(id, format!("call_mock_{index}"));
                assert!(call["function"]["name"].is_string());
            } else {
                order.push(index);
            }
            arguments[index] += call["function"]["arguments"].as_str().unwrap();
        }
    }
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1], "fragments interleave");
    for (index, arguments) in arguments.iter().enumerate() {
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(arguments["index"], index);
    }
    let finish = chunks
        .iter()
        .find(|c| !c["choices"][0]["finish_reason"].is_null());
    assert_eq!(finish.unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // The translator turns the interleaved calls into sequential Anthropic blocks.
    let mut translator = crate::translate::anthropic::ChatToMessagesStream::new("m");
    let mut events = translator.push(text.as_bytes()).to_vec();
    events.extend_from_slice(&translator.finish());
    let events = String::from_utf8(events).unwrap();
    let starts: Vec<&str> = events
        .lines()
        .filter(|line| line.contains("\"content_block_start\""))
        .collect();
    assert_eq!(starts.len(), 2, "{events}");
    assert!(events.contains(r#""stop_reason":"tool_use""#), "{events}");
}

// ---------------------------------------------------------------------------------------------
// The Anthropic dialect.

async fn post_messages(mock: &MockHandle, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/messages", mock.base_url()))
        .header("x-api-key", "sk-ant")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn messages(text: &str, extra: Value) -> Value {
    let mut body = json!({"model": "claude-x", "max_tokens": 100, "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// The `(event, data)` pairs of an Anthropic event stream.
fn named_events(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "torn frame at the end: {text:?}");
    text.split_terminator("\n\n")
        .map(|frame| {
            let (event, data) = frame.split_once('\n').unwrap();
            let event = event.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], event.as_str());
            (event, data)
        })
        .collect()
}

#[tokio::test]
async fn a_message_has_anthropics_shape_and_usage_with_cache_fields() {
    let mock = start(MockConfig::default()).await;
    let response = post_messages(
        &mock,
        messages("hello there world", json!({"mock": {"cached_tokens": 2}})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["id"].as_str().unwrap().starts_with("msg_"),
        "{answer}"
    );
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["model"], "claude-x");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "echo: hello there world"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["stop_sequence"], Value::Null);
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2, "output_tokens": 8})
    );
    let recorded = &mock.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    assert_eq!(recorded.headers["x-api-key"], "sk-ant");
}

#[tokio::test]
async fn a_message_reports_cache_writes_out_of_the_uncached_prompt() {
    let mock = start(MockConfig::default()).await;
    let answer: Value = post_messages(
        &mock,
        messages(
            "hello there world",
            json!({"mock": {"cached_tokens": 2, "cache_write_tokens": 2}}),
        ),
    )
    .await
    .json()
    .await
    .unwrap();
    // Five prompt tokens: two read from the cache, two written to it, one fresh.
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 1, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 2, "output_tokens": 8})
    );
}

#[tokio::test]
async fn a_message_stream_has_anthropics_exact_event_sequence() {
    let mock = start(MockConfig::default()).await;
    let response = post_messages(
        &mock,
        messages("stream me", json!({"stream": true, "mock": {"chunks": 3}})),
    )
    .await;
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events = named_events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 4);
    assert_eq!(
        events[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let streamed: String = events[3..6]
        .iter()
        .map(|(_, data)| {
            assert_eq!(data["index"], 0);
            assert_eq!(data["delta"]["type"], "text_delta");
            data["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(streamed, "echo: stream me");
    assert_eq!(
        events[7].1,
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 3}})
    );

    // The translator reads it back as a chat stream with exact usage.
    let mut translator = crate::translate::anthropic::MessagesToChatStream::new("m", true);
    let mut chat = translator.push(text.as_bytes()).to_vec();
    chat.extend_from_slice(&translator.finish());
    let chat = String::from_utf8(chat).unwrap();
    assert!(chat.ends_with("data: [DONE]\n\n"), "{chat}");
    assert_eq!(
        translator.usage(),
        Some(crate::usage::Usage {
            prompt_tokens: 4,
            completion_tokens: 3,
            total_tokens: 7,
            ..Default::default()
        })
    );
}

#[tokio::test]
async fn the_tool_calls_knob_answers_with_tool_use_blocks() {
    let mock = start(MockConfig::default()).await;
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}}, {"name": "get_time", "input_schema": {"type": "object"}}]);
    let answer: Value = post_messages(
        &mock,
        messages("go", json!({"tools": tools, "mock": {"tool_calls": 2}})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["stop_reason"], "tool_use");
    assert_eq!(
        answer["content"],
        json!([
            {"type": "tool_use", "id": "toolu_mock_0", "name": "get_weather", "input": {"index": 0, "text": "echo: go"}},
            {"type": "tool_use", "id": "toolu_mock_1", "name": "get_time", "input": {"index": 1, "text": "echo: go"}}
        ])
    );

    let text = post_messages(
        &mock,
        messages(
            "go",
            json!({"stream": true, "tools": tools, "mock": {"tool_calls": 2, "chunks": 3}}),
        ),
    )
    .await
    .text()
    .await
    .unwrap();
    let events = named_events(&text);
    let mut inputs: Vec<String> = Vec::new();
    let mut open = None;
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(open, None);
                assert_eq!(data["index"], inputs.len());
                assert_eq!(data["content_block"]["type"], "tool_use");
                assert_eq!(data["content_block"]["input"], json!({}));
                open = Some(inputs.len());
                inputs.push(String::new());
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64().map(|i| i as usize), open);
                assert_eq!(data["delta"]["type"], "input_json_delta");
                inputs[open.unwrap()] += data["delta"]["partial_json"].as_str().unwrap();
            }
            "content_block_stop" => open = None,
            "message_delta" => assert_eq!(data["delta"]["stop_reason"], "tool_use"),
            _ => {}
        }
    }
    let deltas = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .count();
    assert_eq!(deltas, 6, "three fragments per input");
    for (index, input) in inputs.iter().enumerate() {
        let input: Value = serde_json::from_str(input).unwrap();
        assert_eq!(input["index"], index);
    }
}

#[tokio::test]
async fn anthropic_errors_auth_cuts_and_missing_usage() {
    let mock = start(MockConfig::default()).await;
    let response = client()
        .post(format!("{}/messages", mock.base_url()))
        .json(&messages("hi", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");

    let response = post_messages(&mock, messages("hi", json!({"mock": {"status": 429}}))).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error,
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "simulated upstream failure: 429 Too Many Requests"}})
    );
    let response = post_messages(&mock, messages("hi", json!({"mock": {"status": 529}}))).await;
    assert_eq!(response.status(), 529);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "overloaded_error");
    let response = post_messages(&mock, json!({"messages": "nope"})).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    let response = client()
        .post(format!("{}/messages", mock.base_url()))
        .header("authorization", "Bearer sk-b")
        .json(&messages(
            "hi",
            json!({"mock": {"status_for_key": {"sk-b": 403}}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "a bearer token is a credential too");

    let mut response = post_messages(
        &mock,
        messages(
            "cut me",
            json!({"stream": true, "mock": {"chunks": 4, "cut_after": 2}}),
        ),
    )
    .await;
    let mut text = String::new();
    let broken = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broken, "the stream ended cleanly: {text}");
    assert_eq!(text.matches("content_block_delta").count(), 2 * 2, "{text}");
    assert!(!text.contains("message_stop"));

    let answer: Value = post_messages(&mock, messages("hi", json!({"mock": {"no_usage": true}})))
        .await
        .json()
        .await
        .unwrap();
    assert!(answer.get("usage").is_none(), "{answer}");
}

// ---------------------------------------------------------------------------------------------
// The Gemini dialect.

async fn post_gemini(mock: &MockHandle, method: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}/models/gemini-test:{method}",
            mock.gemini_base_url()
        ))
        .header("x-goog-api-key", "g-key")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn contents(text: &str, extra: Value) -> Value {
    let mut body = json!({
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "first"}]},
            {"role": "model", "parts": [{"text": "ok"}]},
            {"role": "user", "parts": [{"text": text}]}
        ]
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

#[tokio::test]
async fn generate_content_echoes_with_usage_metadata() {
    let mock = start(MockConfig::default()).await;
    let response = post_gemini(
        &mock,
        "generateContent",
        contents("hello world", json!({"mock": {"cached_tokens": 2}})),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let candidate = &answer["candidates"][0];
    assert_eq!(
        candidate["content"],
        json!({"parts": [{"text": "echo: hello world"}], "role": "model"})
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(candidate["index"], 0);
    assert_eq!(
        answer["usageMetadata"],
        json!({"promptTokenCount": 6, "candidatesTokenCount": 8, "totalTokenCount": 14, "cachedContentTokenCount": 2})
    );
    assert_eq!(answer["modelVersion"], "gemini-test");
    assert!(answer["responseId"].is_string());
    assert_eq!(
        mock.requests()[0].path,
        "/v1beta/models/gemini-test:generateContent"
    );
}

#[tokio::test]
async fn stream_generate_content_sends_sse_frames_and_no_done() {
    let mock = start(MockConfig::default()).await;
    let response = client()
        .post(format!(
            "{}/models/gemini-test:streamGenerateContent?alt=sse",
            mock.gemini_base_url()
        ))
        .header("x-goog-api-key", "g-key")
        .json(&contents("stream this", json!({"mock": {"chunks": 3}})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    assert!(!text.contains("[DONE]"));
    let frames: Vec<Value> = text
        .split_terminator("\r\n\r\n")
        .map(|frame| serde_json::from_str(frame.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(frames.len(), 3 + 1, "{text}");
    let streamed: String = frames
        .iter()
        .map(|frame| {
            frame["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(streamed, "echo: stream this");
    assert!(
        frames[..3]
            .iter()
            .all(|f| f["candidates"][0].get("finishReason").is_none())
    );
    let last = frames.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"],
        json!({"promptTokenCount": 6, "candidatesTokenCount": 3, "totalTokenCount": 9})
    );
    assert_eq!(
        frames[0]["usageMetadata"],
        json!({"promptTokenCount": 6, "totalTokenCount": 6})
    );

    // The translator reads it as a complete chat stream.
    let mut translator = crate::translate::gemini::GeminiToChatStream::new("m", true);
    let mut chat = translator.push(text.as_bytes()).to_vec();
    chat.extend_from_slice(&translator.finish());
    let chat = String::from_utf8(chat).unwrap();
    assert!(chat.ends_with("data: [DONE]\n\n"), "{chat}");
    assert_eq!(translator.usage().map(|u| u.completion_tokens), Some(3));
}

#[tokio::test]
async fn gemini_function_calls_safety_blocks_and_errors() {
    let mock = start(MockConfig::default()).await;
    let tools = json!([{"functionDeclarations": [{"name": "get_weather"}, {"name": "get_time"}]}]);
    let answer: Value = post_gemini(
        &mock,
        "generateContent",
        contents("go", json!({"tools": tools, "mock": {"tool_calls": 2}})),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        answer["candidates"][0]["content"]["parts"],
        json!([
            {"functionCall": {"name": "get_weather", "args": {"index": 0, "text": "echo: go"}}},
            {"functionCall": {"name": "get_time", "args": {"index": 1, "text": "echo: go"}}}
        ])
    );
    assert_eq!(answer["candidates"][0]["finishReason"], "STOP");

    let answer: Value = post_gemini(
        &mock,
        "generateContent",
        contents("bad", json!({"mock": {"safety_block": true}})),
    )
    .await
    .json()
    .await
    .unwrap();
    let candidate = &answer["candidates"][0];
    assert_eq!(candidate["finishReason"], "SAFETY");
    assert!(candidate.get("content").is_none(), "{answer}");
    assert_eq!(candidate["safetyRatings"][0]["blocked"], true);
    let text = client()
        .post(format!(
            "{}/models/gemini-test:streamGenerateContent?alt=sse",
            mock.gemini_base_url()
        ))
        .header("x-goog-api-key", "g-key")
        .json(&contents("bad", json!({"mock": {"safety_block": true}})))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.matches("data: ").count(), 1, "{text}");
    assert!(text.contains(r#""finishReason":"SAFETY""#), "{text}");

    let response = post_gemini(
        &mock,
        "generateContent",
        contents("x", json!({"mock": {"status": 429}})),
    )
    .await;
    assert_eq!(response.status(), 429);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], 429);
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");

    let response = client()
        .post(format!(
            "{}/models/gemini-test:generateContent",
            mock.gemini_base_url()
        ))
        .json(&contents("x", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a key is required");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");
    let response = client()
        .post(format!(
            "{}/models/gemini-test:generateContent?key=k2",
            mock.gemini_base_url()
        ))
        .json(&contents(
            "x",
            json!({"mock": {"status_for_key": {"k2": 503}}}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "?key= is the credential");
    let response = post_gemini(&mock, "streamGenerateContent", contents("x", json!({}))).await;
    assert_eq!(response.status(), 400, "streams need alt=sse");
    let response = post_gemini(&mock, "countTokens", contents("x", json!({}))).await;
    assert_eq!(response.status(), 404);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "NOT_FOUND");

    let mut response = client()
        .post(format!(
            "{}/models/gemini-test:streamGenerateContent?alt=sse",
            mock.gemini_base_url()
        ))
        .header("x-goog-api-key", "g-key")
        .json(&contents(
            "cut this please",
            json!({"mock": {"chunks": 5, "cut_after": 2}}),
        ))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let broken = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broken, "{text}");
    assert_eq!(text.matches("data: ").count(), 2, "{text}");
    assert!(!text.contains("finishReason"));
}

#[tokio::test]
async fn latency_and_hang_apply_to_every_dialect() {
    let mock = start(MockConfig::default()).await;
    let started = Instant::now();
    let response = post_messages(&mock, messages("hi", json!({"mock": {"latency_ms": 100}}))).await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(100));

    let hung = client()
        .post(format!("{}/messages", mock.base_url()))
        .header("x-api-key", "k")
        .timeout(Duration::from_millis(200))
        .json(&messages("hi", json!({"mock": {"hang": true}})))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    let hung = client()
        .post(format!(
            "{}/models/g:generateContent",
            mock.gemini_base_url()
        ))
        .header("x-goog-api-key", "k")
        .timeout(Duration::from_millis(200))
        .json(&contents("hi", json!({"mock": {"hang": true}})))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn a_response_has_the_responses_shape_and_usage_whole_and_streamed() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "m1", "instructions": "be brief",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello there world"}]}],
        "mock": {"chunks": 3, "cached_tokens": 2, "reasoning_tokens": 4}});
    let response: Value = post(&mock, "/responses", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["model"], "m1");
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "echo: hello there world"
    );
    // Five words in, three pieces and four reasoning tokens out.
    assert_eq!(
        response["usage"],
        json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 2},
               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 4},
               "total_tokens": 12})
    );

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let text = post(&mock, "/responses", streamed)
        .await
        .text()
        .await
        .unwrap();
    let events = named_events(&text);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (number, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], number);
    }
    let deltas: String = events
        .iter()
        .filter_map(|(_, data)| data["delta"].as_str())
        .collect();
    assert_eq!(deltas, "echo: hello there world");
    assert_eq!(events[10].1["response"]["usage"]["output_tokens"], 7);
    assert!(!text.contains("[DONE]"));
}

#[tokio::test]
async fn the_call_knob_asks_for_one_call_until_its_result_comes_back() {
    let mock = start(MockConfig::default()).await;
    let tools = json!([{"type": "function", "name": "exec_command", "parameters": {}},
                       {"type": "web_search"}]);
    let prompt = r#"mock: {"call": {"name": "exec_command", "arguments": {"cmd": "echo ok"}}}"#;
    for stream in [false, true] {
        // The knobs are in the prompt: the answer is the call.
        let body = json!({"model": "m1", "stream": stream, "tools": tools,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": prompt}]}]});
        let text = post(&mock, "/responses", body).await.text().await.unwrap();
        let call = if stream {
            let events = named_events(&text);
            let (_, completed) = events.last().unwrap();
            completed["response"]["output"][0].clone()
        } else {
            serde_json::from_str::<Value>(&text).unwrap()["output"][0].clone()
        };
        assert_eq!(call["type"], "function_call", "{text}");
        assert_eq!(call["name"], "exec_command");
        assert_eq!(call["arguments"], r#"{"cmd":"echo ok"}"#);

        // The call's output is back: the answer echoes it.
        let body = json!({"model": "m1", "stream": stream, "tools": tools, "input": [
            {"role": "user", "content": [{"type": "input_text", "text": prompt}]},
            {"type": "function_call", "call_id": call["call_id"], "name": "exec_command", "arguments": call["arguments"]},
            {"type": "function_call_output", "call_id": call["call_id"], "output": "ok\n"}]});
        let text = post(&mock, "/responses", body).await.text().await.unwrap();
        assert!(text.contains(r#""text":"echo: ok\n""#), "{text}");
    }
    // The same for chat and Messages.
    let body = json!({"model": "m1", "tools": [{"type": "function", "function": {"name": "exec_command"}}],
        "messages": [{"role": "user", "content": prompt}]});
    let answer: Value = post(&mock, "/chat/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let call = &answer["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "exec_command", "{answer}");
    let mut after = body;
    after["messages"] = json!([{"role": "user", "content": prompt},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": call}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]);
    let answer: Value = post(&mock, "/chat/completions", after)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: ok");
    let body = json!({"model": "m1", "max_tokens": 10, "tools": [{"name": "exec_command", "input_schema": {}}],
        "messages": [{"role": "user", "content": prompt}]});
    let answer: Value = post_messages(&mock, body).await.json().await.unwrap();
    assert_eq!(answer["content"][0]["type"], "tool_use", "{answer}");
    assert_eq!(answer["content"][0]["input"], json!({"cmd": "echo ok"}));
    // Knobs that do not parse are the request's error.
    let body = json!({"model": "m1", "input": "mock: {\"nope\": 1}"});
    assert_eq!(post(&mock, "/responses", body).await.status(), 400);
}

#[tokio::test]
async fn a_responses_stream_can_be_cut_and_fail() {
    let mock = start(MockConfig::default()).await;
    let body = json!({"model": "m1", "input": "one two", "stream": true, "mock": {"chunks": 4, "cut_after": 2}});
    let response = post(&mock, "/responses", body).await;
    let mut received = Vec::new();
    let mut stream = response.bytes_stream();
    use futures_util::StreamExt as _;
    let mut broke = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the connection breaks");
    let text = String::from_utf8(received).unwrap();
    assert_eq!(text.matches("response.output_text.delta\n").count(), 2);
    assert!(!text.contains("response.completed"));
    let body = json!({"model": "m1", "input": "x", "mock": {"status": 503}});
    let response = post(&mock, "/responses", body).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].is_string());
}

mod clouds {
    use super::*;

    const KEY: &str = include_str!("../../tests/fixtures/vertex-sa-TEST-ONLY.key.pem");
    const PUBLIC_KEY: &str = include_str!("../../tests/fixtures/vertex-sa-TEST-ONLY.pub.pem");
    const OTHER_KEY: &str = include_str!("../../tests/fixtures/vertex-sa-other-TEST-ONLY.key.pem");

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// A JWT assertion signed with `pem`, with these claims.
    fn assertion(pem: &str, claims: &Value) -> String {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let der = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .unwrap()
            .to_pkcs1_der()
            .unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes());
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn claims(mock: &MockHandle, iat: i64, exp: i64) -> Value {
        json!({
            "iss": "sa@test.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": mock.token_uri(),
            "iat": iat,
            "exp": exp,
        })
    }

    async fn exchange(mock: &MockHandle, grant_type: &str, assertion: &str) -> (u16, Value) {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", grant_type)
            .append_pair("assertion", assertion)
            .finish();
        let response = client()
            .post(mock.token_uri())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

    fn vertex_config(lifetime: Duration) -> MockConfig {
        MockConfig {
            vertex_public_key: Some(PUBLIC_KEY.to_owned()),
            token_lifetime: lifetime,
            ..MockConfig::default()
        }
    }

    #[tokio::test]
    async fn the_token_endpoint_checks_the_assertion_as_google_does() {
        let mock = start(vertex_config(Duration::from_secs(10))).await;
        let t = now();
        let (status, body) = exchange(
            &mock,
            JWT_BEARER,
            &assertion(KEY, &claims(&mock, t, t + 3600)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
        assert_eq!(body["expires_in"], 10);

        let refused = [
            // Signed by a key that is not the service account's.
            assertion(OTHER_KEY, &claims(&mock, t, t + 3600)),
            // Expired.
            assertion(KEY, &claims(&mock, t - 7200, t - 3600)),
            // Longer than an hour.
            assertion(KEY, &claims(&mock, t, t + 7200)),
            // Made in the future.
            assertion(KEY, &claims(&mock, t + 1000, t + 2000)),
            // For another audience.
            assertion(KEY, &{
                let mut other = claims(&mock, t, t + 3600);
                other["aud"] = json!("https://oauth2.googleapis.com/token");
                other
            }),
        ];
        for (index, assertion) in refused.iter().enumerate() {
            let (status, body) = exchange(&mock, JWT_BEARER, assertion).await;
            assert_eq!(status, 400, "{index}: {body}");
            assert_eq!(body["error"], "invalid_grant", "{index}: {body}");
        }
        let (_, body) = exchange(&mock, JWT_BEARER, &refused[0]).await;
        assert_eq!(body["error_description"], "Invalid JWT Signature.");
        let (status, body) = exchange(&mock, "client_credentials", &refused[0]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );

        assert_eq!(mock.token_requests(), 8);
        let stats: Value = client()
            .get(mock.base_url().replace("/v1", "/mock/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["token_requests"], 8);
    }

    async fn vertex_call(
        mock: &MockHandle,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut request = client()
            .post(format!(
                "{}/projects/p/locations/r/publishers/{path}",
                mock.vertex_base_url()
            ))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn token(mock: &MockHandle) -> String {
        let t = now();
        let (_, body) = exchange(
            mock,
            JWT_BEARER,
            &assertion(KEY, &claims(mock, t, t + 3600)),
        )
        .await;
        body["access_token"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn vertex_model_paths_refuse_missing_unknown_and_expired_tokens() {
        let gemini = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        let claude = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 5,
                            "messages": [{"role": "user", "content": "hi"}]});
        let mock = start(vertex_config(Duration::ZERO)).await;
        let expired = token(&mock).await;
        for token in [None, Some("ya29.unknown"), Some(expired.as_str())] {
            let (status, body) = vertex_call(
                &mock,
                "google/models/gemini-2.5-flash:generateContent",
                token,
                gemini.clone(),
            )
            .await;
            assert_eq!(status, 401, "{token:?}");
            assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
            let (status, _) = vertex_call(
                &mock,
                "anthropic/models/claude-x:rawPredict",
                token,
                claude.clone(),
            )
            .await;
            assert_eq!(status, 401, "{token:?}");
        }

        mock.set_config(vertex_config(Duration::from_secs(3600)));
        let live = token(&mock).await;
        let (status, body) = vertex_call(
            &mock,
            "google/models/gemini-2.5-flash:generateContent",
            Some(&live),
            gemini,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = vertex_call(
            &mock,
            "anthropic/models/claude-x:rawPredict",
            Some(&live),
            claude.clone(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["model"], "claude-x");
        // Vertex's Messages body names no model and carries Vertex's version.
        let mut named = claude.clone();
        named["model"] = json!("claude-x");
        let (status, _) = vertex_call(
            &mock,
            "anthropic/models/claude-x:rawPredict",
            Some(&live),
            named,
        )
        .await;
        assert_eq!(status, 400);
        let mut unversioned = claude;
        unversioned
            .as_object_mut()
            .unwrap()
            .remove("anthropic_version");
        let (status, _) = vertex_call(
            &mock,
            "anthropic/models/claude-x:rawPredict",
            Some(&live),
            unversioned,
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn azure_paths_need_the_key_and_an_api_version() {
        let mock = start(MockConfig {
            azure_api_key: Some("az-key".into()),
            ..MockConfig::default()
        })
        .await;
        let url = |query: &str| {
            format!(
                "{}/deployments/dep/chat/completions{query}",
                mock.azure_base_url()
            )
        };
        let send = |url: String, key: Option<&'static str>| {
            let mut request = client().post(url).json(&chat("hi", json!({})));
            if let Some(key) = key {
                request = request.header("api-key", key);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(send(url("?api-version=2024-10-21"), None).await, 401);
        assert_eq!(
            send(url("?api-version=2024-10-21"), Some("wrong")).await,
            401
        );
        assert_eq!(send(url(""), Some("az-key")).await, 404);
        assert_eq!(
            send(url("?api-version=2024-10-21"), Some("az-key")).await,
            200
        );
    }
}
