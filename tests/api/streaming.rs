//! Streaming: frames forwarded as they arrive, `[DONE]` kept, failures end the stream with an
//! error event, and a client that leaves cancels the upstream request.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{TestOptions, eventually, spawn_app, spawn_with};

/// Reads the whole body of a streamed response, noting when the first `data:` frame came.
async fn read_stream(mut response: reqwest::Response) -> (String, Instant) {
    let mut text = String::new();
    let mut first = None;
    while let Some(chunk) = response.chunk().await.unwrap() {
        if first.is_none() && chunk.windows(5).any(|w| w == b"data:") {
            first = Some(Instant::now());
        }
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    (text, first.unwrap_or_else(Instant::now))
}

fn data_frames(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter_map(|frame| frame.trim().strip_prefix("data: "))
        .collect()
}

#[tokio::test]
async fn frames_arrive_one_by_one_with_sse_headers_and_done() {
    let app = spawn_app().await;
    let response = app
        .chat(json!({
            "model": "gpt-test", "stream": true,
            "messages": [{"role": "user", "content": "stream me"}],
            "mock": {"chunks": 4, "chunk_delay_ms": 250}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.get("content-encoding").is_none());

    let (text, first_frame) = read_stream(response).await;
    let finished = Instant::now();
    // The mock spends a second on its four content frames; a gateway that buffered would hand
    // everything over at the end. The first frame must come well before the last.
    assert!(
        finished.duration_since(first_frame) >= Duration::from_millis(500),
        "first frame came only {:?} before the end",
        finished.duration_since(first_frame)
    );
    let frames = data_frames(&text);
    assert_eq!(*frames.last().unwrap(), "[DONE]");
    let content: String = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(content.starts_with("echo: stream me"), "{content}");
    app.stop().await;
}

/// The client's response headers go out as soon as the upstream's do, not with the first
/// frame: a text completion stream has no opening frame, so its first frame comes only after
/// the mock's first chunk delay, and the headers must not wait for it.
#[tokio::test]
async fn stream_headers_go_out_before_the_first_frame() {
    let app = spawn_app().await;
    let sent = Instant::now();
    let response = app
        .post(
            "/v1/completions",
            json!({
                "model": "gpt-test", "stream": true, "prompt": "stream me",
                "mock": {"chunks": 2, "chunk_delay_ms": 1500}
            }),
        )
        .send()
        .await
        .unwrap();
    let headers_after = sent.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (_, first_frame) = read_stream(response).await;
    let first_frame_after = first_frame.duration_since(sent);
    assert!(
        first_frame_after >= Duration::from_millis(1500),
        "the first frame came after {first_frame_after:?}, before the mock's delay"
    );
    assert!(
        headers_after < Duration::from_millis(1000),
        "the headers came after {headers_after:?}, with the first frame ({first_frame_after:?})"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let app = spawn_app().await;
    let mut response = app
        .chat(json!({
            "model": "gpt-test", "stream": true,
            "messages": [{"role": "user", "content": "long answer"}],
            "mock": {"chunks": 50, "chunk_delay_ms": 100}
        }))
        .send()
        .await
        .unwrap();
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    let seen = eventually(Duration::from_secs(3), || async {
        app.mock.disconnects() == 1
    })
    .await;
    assert!(seen.is_some(), "the upstream never saw the client leave");
    app.stop().await;
}

#[tokio::test]
async fn an_upstream_cut_mid_stream_ends_with_an_error_event() {
    let app = spawn_app().await;
    let response = app
        .chat(json!({
            "model": "gpt-test", "stream": true,
            "messages": [{"role": "user", "content": "cut me"}],
            "mock": {"chunks": 6, "cut_after": 2}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (text, _) = read_stream(response).await;
    let frames = data_frames(&text);
    let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(
        app.mock.request_count(),
        1,
        "nothing is retried after the first byte"
    );
    app.stop().await;
}

/// Silence before the response headers is bounded by the same read timeout, for a whole answer
/// and a stream alike, long before the model's deadline (the mock would answer after 5 s).
#[tokio::test]
async fn an_upstream_silent_before_its_headers_times_out_after_the_read_timeout() {
    let mut options = TestOptions::default();
    options.settings.upstream.read_timeout = Duration::from_millis(300);
    let app = spawn_with(options).await;
    for stream in [false, true] {
        let started = Instant::now();
        let response = app
            .chat(json!({
                "model": "gpt-test", "stream": stream,
                "messages": [{"role": "user", "content": "slow to start"}],
                "mock": {"latency_ms": 5000}
            }))
            .send()
            .await
            .unwrap();
        crate::helpers::assert_error(response, 504, "upstream_timeout").await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "stream {stream}: waited {:?}, past the read timeout",
            started.elapsed()
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upstream_that_falls_silent_ends_the_stream_with_a_timeout_event() {
    let mut options = TestOptions::default();
    options.settings.upstream.read_timeout = Duration::from_millis(300);
    let app = spawn_with(options).await;
    let response = app
        .chat(json!({
            "model": "gpt-test", "stream": true,
            "messages": [{"role": "user", "content": "slow"}],
            "mock": {"chunks": 3, "chunk_delay_ms": 5000}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let started = Instant::now();
    let (text, _) = read_stream(response).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the silence was not cut short"
    );
    let frames = data_frames(&text);
    let last: serde_json::Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{text}");
    app.stop().await;
}
