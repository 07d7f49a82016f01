//! Operations: metrics after traffic, the overhead header, the one log line per request.

use crate::helpers::{chat_body, spawn_app};

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
    let missing = r#"llmgate_requests_total{endpoint="chat_completions",model="no-such-model",route="none",status_class="4xx"}"#;
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
