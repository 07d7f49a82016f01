//! Tests of the mock upstream over real HTTP on 127.0.0.1.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{MockConfig, MockHandle, spawn};

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
