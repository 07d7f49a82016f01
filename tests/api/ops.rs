//! Operations: metrics after traffic, the overhead header, the one log line per request.

use std::time::Duration;

use llmgate::usage::{Usage, UsageEvent};

use crate::helpers::{TestApp, TestOptions, chat_body, eventually, spawn_app, spawn_with};

fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_move_with_traffic_and_responses_carry_the_overhead() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let response = app.chat(chat_body("gpt-test", "hi")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let overhead: f64 = response.headers()["x-llmgate-overhead-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..5_000.0).contains(&overhead), "overhead {overhead} ms");
    }
    let mut streamed = chat_body("gpt-test", "hi");
    streamed["stream"] = serde_json::json!(true);
    let response = app.chat(streamed).send().await.unwrap();
    assert!(response.headers().contains_key("x-llmgate-overhead-ms"));
    response.text().await.unwrap();
    let response = app
        .chat(chat_body("no-such-model", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let ok = r#"llmgate_requests_total{endpoint="chat_completions",model="gpt-test",route="mock",status_class="2xx"}"#;
    assert_eq!(sample(&text, ok), 4.0, "{text}");
    // A name that is not configured is counted under one fixed label.
    let missing = r#"llmgate_requests_total{endpoint="chat_completions",model="unknown",route="none",status_class="4xx"}"#;
    assert_eq!(sample(&text, missing), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            r#"llmgate_request_duration_seconds_count{endpoint="chat_completions"}"#
        ),
        5.0
    );
    assert_eq!(
        sample(
            &text,
            r#"llmgate_time_to_first_byte_seconds_count{endpoint="chat_completions"}"#
        ),
        5.0
    );
    assert_eq!(sample(&text, "llmgate_requests_in_flight"), 0.0);
    assert_eq!(sample(&text, "llmgate_open_streams"), 0.0);
    assert!(sample(&text, r#"llmgate_key_cache_lookups_total{result="hit"}"#) >= 4.0);
    assert_eq!(
        sample(&text, r#"llmgate_route_circuit_state{model="gpt-test""#),
        0.0
    );
    assert!(!text.contains(&app.key), "no key in metrics");
    promtool_accepts(&text);
    app.stop().await;
}

/// `promtool check metrics` (installed by tests/setup.sh) accepts the exposition: names,
/// suffixes, help texts and types follow Prometheus conventions.
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by tests/setup.sh (make test)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The metrics text of `app`.
async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_usage_writer_reports_its_flushes() {
    let mut options = TestOptions::default();
    options.settings.usage_flush_interval = Duration::from_millis(50);
    let app = spawn_with(options).await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, "llmgate_usage_flush_duration_seconds_count"),
        0.0
    );
    for _ in 0..3 {
        let response = app.chat(chat_body("gpt-test", "hi")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    // The app's own writer task flushes within its interval; its metrics show what it wrote.
    let flushed = eventually(Duration::from_secs(5), || async {
        sample(
            &scrape(&app).await,
            r#"llmgate_usage_flush_rows_sum{table="log"}"#,
        ) >= 3.0
    })
    .await;
    let text = scrape(&app).await;
    assert!(flushed.is_some(), "no flush reported within 5 s:\n{text}");
    assert_eq!(
        sample(&text, r#"llmgate_usage_flush_rows_sum{table="log"}"#),
        3.0
    );
    let flushes = sample(&text, "llmgate_usage_flush_duration_seconds_count");
    assert!((1.0..=3.0).contains(&flushes), "{flushes} flushes");
    assert_eq!(
        sample(&text, r#"llmgate_usage_flush_rows_count{table="rollup"}"#),
        flushes
    );
    assert!(sample(&text, "llmgate_usage_flush_duration_seconds_sum") > 0.0);
    assert_eq!(sample(&text, "llmgate_usage_flush_errors_total"), 0.0);
    assert_eq!(sample(&text, "llmgate_request_log_dropped_total"), 0.0);
    promtool_accepts(&text);
    app.stop().await;
}

#[tokio::test]
async fn request_log_rows_beyond_the_queue_are_counted_as_dropped() {
    let mut options = TestOptions::default();
    options.settings.usage_queue = 2;
    options.settings.usage_flush_interval = Duration::from_secs(3600);
    let app = spawn_with(options).await;
    // Recorded back to back, with no await between: the writer cannot empty the queue meanwhile.
    for i in 0..5 {
        app.usage.record(UsageEvent {
            at_ms: llmgate::usage::now_ms(),
            request_id: format!("req-{i}"),
            key_id: 1,
            model: "gpt-test".into(),
            model_configured: true,
            endpoint: "chat_completions",
            stream: false,
            provider: None,
            route_id: None,
            account_id: None,
            status: 200,
            attempts: 1,
            latency_ms: 1,
            ttfb_ms: None,
            usage: Usage::default(),
            cost: llmgate::pricing::Nanodollars::default(),
        });
    }
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "llmgate_request_log_dropped_total"),
        3.0,
        "{text}"
    );
    app.stop().await;
}
