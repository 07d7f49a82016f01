//! The upstream connection pool replaced at its age (`LLMGATE_UPSTREAM_POOL_MAX_AGE`): new
//! requests open fresh connections, an answer under way ends on its own connection, and the old
//! connections close.

use std::net::SocketAddr;
use std::time::Duration;

use llmgate::settings::{Settings, UpstreamSettings};
use serde_json::json;

use crate::helpers::{TestApp, TestOptions, chat_body, chat_stream_text, eventually, spawn_with};

const MAX_AGE: Duration = Duration::from_secs(60);

/// How long the old connections may take to close once nothing uses them: at once in fact
/// (the pool that kept them is gone), so this only bounds a slow machine.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

async fn spawn_with_pool_age() -> TestApp {
    let defaults = TestOptions::default();
    spawn_with(TestOptions {
        manual_clock: true,
        settings: Settings {
            upstream: UpstreamSettings {
                pool_max_age: MAX_AGE,
                ..UpstreamSettings::default()
            },
            ..defaults.settings
        },
        ..defaults
    })
    .await
}

/// Sends a non-streamed chat request and returns the upstream connection it used.
async fn chat_peer(app: &TestApp, text: &str) -> SocketAddr {
    let response = app.chat(chat_body("gpt-test", text)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    upstream_peer(app, text)
}

/// The upstream connection of the request whose prompt was `text`.
fn upstream_peer(app: &TestApp, text: &str) -> SocketAddr {
    app.mock
        .requests()
        .into_iter()
        .find(|request| String::from_utf8_lossy(&request.body).contains(text))
        .unwrap_or_else(|| panic!("no upstream request says {text}"))
        .peer
}

/// Checks that the old pool's connections closed, leaving only `renewed`, which the next
/// request reuses: two connections in all.
async fn only_the_new_pool_is_left(app: &TestApp, renewed: SocketAddr, failure: &str) {
    let closed = eventually(CLOSE_WAIT, || async {
        app.mock.open_connections() == [renewed]
    })
    .await;
    assert!(
        closed.is_some(),
        "{failure}: {:?}",
        app.mock.open_connections()
    );
    assert_eq!(chat_peer(app, "second of the new pool").await, renewed);
    assert_eq!(app.mock.connections_accepted(), 2);
}

#[tokio::test]
async fn a_request_after_the_pools_age_takes_a_new_connection_and_the_idle_old_one_closes() {
    let app = spawn_with_pool_age().await;
    let first = chat_peer(&app, "first of the old pool").await;
    assert_eq!(chat_peer(&app, "second of the old pool").await, first);
    app.advance(MAX_AGE - Duration::from_secs(1));
    assert_eq!(
        chat_peer(&app, "third of the old pool").await,
        first,
        "the pool was replaced before its age"
    );

    app.advance(Duration::from_secs(1));
    let renewed = chat_peer(&app, "first of the new pool").await;
    assert_ne!(
        renewed, first,
        "a request after the pool's age reused the old pool's connection"
    );
    only_the_new_pool_is_left(&app, renewed, "the old pool's idle connection stayed open").await;
    app.stop().await;
}

#[tokio::test]
async fn a_stream_under_way_when_the_pool_is_replaced_ends_whole_on_its_connection_which_then_closes()
 {
    let app = spawn_with_pool_age().await;
    let prompt = "a stream that began in the old pool";
    let mut stream = app
        .chat(json!({
            "model": "gpt-test", "stream": true,
            "messages": [{"role": "user", "content": prompt}],
            "mock": {"chunks": 20, "chunk_delay_ms": 100}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut text = String::from_utf8(stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let streaming = upstream_peer(&app, prompt);

    app.advance(MAX_AGE);
    let renewed = chat_peer(&app, "first of the new pool").await;
    assert_ne!(renewed, streaming);
    let mut open = vec![streaming, renewed];
    open.sort();
    assert_eq!(app.mock.open_connections(), open, "both pools' connections");

    let mut frames_after_renewal = 0;
    while let Some(chunk) = stream.chunk().await.unwrap() {
        frames_after_renewal += 1;
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        frames_after_renewal > 0,
        "the stream had ended before the pool was replaced"
    );
    let (content, done) = chat_stream_text(&text);
    assert!(done, "no [DONE]: {text}");
    assert_eq!(
        content,
        format!("echo: {prompt}"),
        "the stream is not whole"
    );

    only_the_new_pool_is_left(
        &app,
        renewed,
        "the old pool's connection stayed open after its stream ended",
    )
    .await;
    app.stop().await;
}
