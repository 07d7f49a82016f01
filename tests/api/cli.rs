//! The binary itself: config checking, refusing bad files, the demo, graceful shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;

/// What a spawned `serve` wrote to stderr, read by a thread as it comes.
#[derive(Clone, Default)]
struct ServeLog {
    lines: Arc<Mutex<Vec<String>>>,
    /// Set when the reader saw the end of the pipe: the process exited and nothing is left.
    ended: Arc<(Mutex<bool>, Condvar)>,
}

impl ServeLog {
    fn lock(&self) -> std::sync::LockResult<MutexGuard<'_, Vec<String>>> {
        self.lines.lock()
    }

    /// Every line, once the process has exited and its reader has read the last of them: log
    /// lines are written in batches, the last ones at exit, so `wait()` alone can return first.
    fn complete(&self) -> Vec<String> {
        let (ended, changed) = &*self.ended;
        let (ended, timeout) = changed
            .wait_timeout_while(ended.lock().unwrap(), Duration::from_secs(10), |ended| {
                !*ended
            })
            .unwrap();
        assert!(
            *ended && !timeout.timed_out(),
            "stderr still open 10 s after exit"
        );
        self.lines.lock().unwrap().clone()
    }
}

use crate::helpers::{TestApp, bind, config_text};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn config_check_reports_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.toml", &config_text("http://127.0.0.1:1/v1", ""));
    let output = Command::new(TestApp::bin())
        .args(["config", "check", &good])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let bad = write(
        &dir,
        "bad.toml",
        r#"
[[providers]]
name = "p"
kind = "openai"
base_url = "not a url"

[[models]]
name = "m"
  [[models.routes]]
  provider = "nope"
  model = "x"
"#,
    );
    let output = Command::new(TestApp::bin())
        .args(["config", "check", &bad])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("base_url"), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");

    let syntax = write(&dir, "syntax.toml", "[[providers]]\nname = \n");
    let output = Command::new(TestApp::bin())
        .args(["config", "check", &syntax])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2"));
}

#[test]
fn serve_refuses_a_bad_config_file_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.toml", "[[models]]\nname = \"m\"\n");
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let output = Command::new(TestApp::bin())
        .args([
            "serve",
            "--config",
            &bad,
            "--listen",
            "127.0.0.1:0",
            "--database",
            &db,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to start") && stderr.contains("route"),
        "{stderr}"
    );
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let output = Command::new(TestApp::bin())
        .args([
            "migrate",
            "--database",
            &format!("sqlite://{}", path.display()),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(path.exists());
}

#[test]
fn models_catalog_lists_known_models_and_resolves_a_snapshot_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(TestApp::bin())
            .args(args)
            .current_dir(dir.path())
            .env_remove("LLMGATE_DATABASE_URL")
            .output()
            .unwrap()
    };

    let all = run(&["models", "catalog"]);
    let stdout = String::from_utf8_lossy(&all.stdout);
    assert_eq!(
        all.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert!(stdout.starts_with("MODEL"), "{stdout}");
    for name in [
        "gpt-4o-mini ",
        "claude-sonnet-4-5 ",
        "gemini-2.5-pro ",
        "gpt-oss-120b ",
    ] {
        assert!(
            stdout.lines().any(|line| line.starts_with(name)),
            "{name} missing"
        );
    }
    assert!(stdout.lines().count() > 50);

    let one = run(&["models", "catalog", "openai/gpt-4o-2024-08-06"]);
    let stdout = String::from_utf8_lossy(&one.stdout);
    assert_eq!(
        one.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    assert!(
        stdout.starts_with("openai/gpt-4o-2024-08-06 → gpt-4o "),
        "{stdout}"
    );
    assert!(stdout.contains("16384 tokens"), "{stdout}");
    assert!(stdout.contains("$10.00 per million tokens"), "{stdout}");
    assert!(stdout.contains("source"), "{stdout}");

    // A sibling model is its own entry, never its neighbour's prices.
    let mini = run(&["models", "catalog", "gpt-4o-mini"]);
    let stdout = String::from_utf8_lossy(&mini.stdout);
    assert!(stdout.starts_with("gpt-4o-mini (exact)"), "{stdout}");
    assert!(stdout.contains("$0.15 per million tokens"), "{stdout}");
    assert!(!stdout.contains("$2.50"), "{stdout}");

    let unknown = run(&["models", "catalog", "gpt-4o-audio-preview"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("'gpt-4o-audio-preview' is not in the catalog"),
        "{stderr}"
    );

    // Reading the compiled-in catalog never opens (or creates) a database.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Starts `llmgate serve` with `args`, returning the child and the address it listens on.
fn start_serve(dir: &tempfile::TempDir, args: &[&str]) -> (Child, String, ServeLog) {
    start_serve_with(dir, args, &[])
}

fn start_serve_with(
    dir: &tempfile::TempDir,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Child, String, ServeLog) {
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let mut child = Command::new(TestApp::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &db])
        .args(args)
        .env("LLMGATE_LOG_FORMAT", "json")
        .env("LLMGATE_SHUTDOWN_GRACE", "10s")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        seen.push(line.clone());
        if line.contains("llmgate is listening") {
            let log: serde_json::Value = serde_json::from_str(&line).unwrap();
            break log["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe; keep it for failures.
    let log = ServeLog {
        lines: Arc::new(Mutex::new(seen)),
        ..ServeLog::default()
    };
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
        let (ended, changed) = &*sink.ended;
        *ended.lock().unwrap() = true;
        changed.notify_all();
    });
    (child, addr, log)
}

fn terminate(child: &mut Child) -> Option<i32> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap().code()
}

#[tokio::test]
async fn demo_mode_serves_a_completion_with_the_printed_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = start_serve(&dir, &["--demo"]);
    let stdout = child.stdout.take().unwrap();
    let key = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("demo key (shown once): ")
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = json!({"model": "demo-echo", "messages": [{"role": "user", "content": "Hello!"}]});
    let response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => panic!("{error}; serve logged:\n{}", log.lock().unwrap().join("\n")),
    };
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "echo: Hello!");
    assert_eq!(terminate(&mut child), Some(0));
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits_cleanly() {
    let mock = llmgate::mock::spawn(bind().await, llmgate::mock::MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir,
        "c.toml",
        &format!(
            "{}\n[[keys]]\nname = \"k\"\nkey = \"sk-test-key-0123456789abcdef0123456789-0123456\"\n",
            config_text(&mock.base_url(), "")
        ),
    );
    let (mut child, addr, _) = start_serve(&dir, &["--config", &config]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth("sk-test-key-0123456789abcdef0123456789-0123456")
        .json(&json!({
            "model": "gpt-test", "stream": true,
            "messages": [{"role": "user", "content": "finish me"}],
            "mock": {"chunks": 10, "chunk_delay_ms": 100}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some());

    let pid = child.id().to_string();
    let waiter = tokio::task::spawn_blocking(move || {
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        child.wait().unwrap().code()
    });
    let mut rest = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        rest.trim_end().ends_with("data: [DONE]"),
        "the stream was cut: {rest}"
    );
    let code = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, Some(0));

    // New connections are refused once it has stopped.
    assert!(
        client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn each_request_gets_one_structured_log_line_and_successes_can_be_sampled() {
    let mock = llmgate::mock::spawn(bind().await, llmgate::mock::MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "sk-test-key-log-0123456789-abcdefgh";
    let config = write(
        &dir,
        "c.toml",
        &format!(
            "{}\n[[keys]]\nname = \"logged\"\nkey = \"{key}\"\n",
            config_text(&mock.base_url(), "")
        ),
    );
    for (sample, expected_ok) in [("1", 2), ("0", 0)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr, log) = start_serve_with(
            &dir,
            &["--config", &config],
            &[("LLMGATE_LOG_SAMPLE", sample)],
        );
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for model in ["gpt-test", "gpt-test", "missing-model"] {
            client
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap();
        }
        assert_eq!(terminate(&mut child), Some(0));
        let lines: Vec<serde_json::Value> = log
            .complete()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter(|line: &serde_json::Value| line["target"] == "llmgate::request")
            .collect();
        let ok = lines.iter().filter(|l| l["status"] == 200).count();
        let failed: Vec<_> = lines.iter().filter(|l| l["status"] == 404).collect();
        assert_eq!(ok, expected_ok, "sample {sample}: {lines:?}");
        assert_eq!(failed.len(), 1, "errors are never sampled away");
        let line = lines
            .iter()
            .find(|l| l["status"] == 200)
            .unwrap_or(failed[0]);
        assert_eq!(line["key"], "logged");
        for field in [
            "request_id",
            "model",
            "route",
            "attempts",
            "latency_ms",
            "overhead_ms",
        ] {
            assert!(line.get(field).is_some(), "missing {field}: {line}");
        }
        let text = log.lock().unwrap().join("\n");
        assert!(!text.contains(key), "the key leaked into the log");
        assert!(
            !text.contains(crate::helpers::UPSTREAM_KEY),
            "the upstream key leaked into the log"
        );
    }
}

#[tokio::test]
async fn healthcheck_exits_zero_only_while_the_gateway_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _) = start_serve(&dir, &[]);
    let check = |addr: &str, ready: bool| {
        Command::new(TestApp::bin())
            .args(["healthcheck", "--listen", addr])
            .args(ready.then_some("--ready"))
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(check(&addr, false), Some(0));
    assert_eq!(check(&addr, true), Some(0));
    assert_eq!(terminate(&mut child), Some(0));
    assert_eq!(check(&addr, false), Some(1));
    assert_eq!(check(&addr, true), Some(1));
}

#[tokio::test]
async fn backup_while_writing_gives_a_consistent_database_that_can_be_served() {
    let app = crate::helpers::spawn_sqlite_app().await;
    let db = app.db.clone();
    let writer = tokio::spawn(async move {
        for i in 0..200 {
            llmgate::auth::create_key(
                &db,
                llmgate::auth::NewKey {
                    name: format!("k{i}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let copy_path = copy.display().to_string();
    let db_url = app.db_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(TestApp::bin())
            .args(["backup", &copy_path, "--database", &db_url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    writer.await.unwrap();

    // A second backup to the same file is refused rather than overwriting it.
    let again = Command::new(TestApp::bin())
        .args([
            "backup",
            &copy.display().to_string(),
            "--database",
            &app.db_url,
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));

    // The copy opens, passes the integrity check, and serves with the original's key file.
    let copy_url = format!("sqlite://{}", copy.display());
    let restored = llmgate::db::Db::open(&copy_url).await.unwrap();
    assert_eq!(restored.integrity_check().await.unwrap(), "ok");
    restored.close().await;
    let original_key = std::fs::read(format!(
        "{}.key",
        app.db_url.trim_start_matches("sqlite://")
    ))
    .unwrap();
    std::fs::write(format!("{}.key", copy.display()), original_key).unwrap();
    let settings = llmgate::settings::Settings {
        database_url: copy_url,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let served = llmgate::app::App::build(settings, None).await.unwrap();
    assert!(served.state().gateway.catalog().model("gpt-test").is_some());
    app.stop().await;
}

#[tokio::test]
async fn traces_continue_the_clients_trace_reach_an_otlp_receiver_and_propagate_upstream() {
    use axum::routing::post;
    // A minimal OTLP/HTTP JSON receiver that keeps every export it gets.
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                if let Ok(json) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(json);
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = bind().await;
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let mock = llmgate::mock::spawn(bind().await, llmgate::mock::MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "sk-test-key-trace-0123456789-abcdef";
    let config = write(
        &dir,
        "c.toml",
        &format!(
            "{}\n[[keys]]\nname = \"traced\"\nkey = \"{key}\"\n",
            config_text(&mock.base_url(), "")
        ),
    );
    let (mut child, addr, _) = start_serve_with(
        &dir,
        &["--config", &config],
        &[("LLMGATE_OTLP_ENDPOINT", &otlp)],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // The client's own trace, which the request's span continues.
    let (client_trace, client_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(key)
        .header("traceparent", format!("00-{client_trace}-{client_span}-01"))
        .json(&crate::helpers::chat_body("gpt-test", "trace me"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Wait off the runtime: the receiver must keep answering while the gateway flushes.
    let code = tokio::task::spawn_blocking(move || terminate(&mut child))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "shutdown flushes the spans");

    let spans: Vec<serde_json::Value> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|export| {
            export["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let request = spans
        .iter()
        .find(|s| s["name"] == "chat_completions")
        .unwrap_or_else(|| panic!("no request span in {spans:?}"));
    let attempt = spans
        .iter()
        .find(|s| s["name"] == "upstream_attempt")
        .unwrap_or_else(|| panic!("no attempt span in {spans:?}"));
    assert_eq!(attempt["traceId"], request["traceId"]);
    assert_eq!(attempt["parentSpanId"], request["spanId"]);
    let hex = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_lowercase();
    assert_eq!(
        hex(&request["traceId"]),
        client_trace,
        "the client's trace goes on"
    );
    assert_eq!(hex(&request["parentSpanId"]), client_span);

    let traceparent = mock.requests()[0].headers["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = request["traceId"].as_str().unwrap().to_lowercase();
    assert!(
        traceparent.contains(&trace_id),
        "{traceparent} vs {trace_id}"
    );
    assert!(traceparent.contains(&attempt["spanId"].as_str().unwrap().to_lowercase()));
}

/// Streams longer than the shutdown grace are ended with an error event when it expires, and
/// each is recorded (usage included, estimated where the upstream reported none) before the
/// database closes.
#[tokio::test]
async fn streams_open_when_the_grace_ends_get_an_error_event_and_a_request_log_row() {
    let mock = llmgate::mock::spawn(bind().await, llmgate::mock::MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        &dir,
        "c.toml",
        &format!(
            "{}\n[[keys]]\nname = \"k\"\nkey = \"sk-test-key-0123456789abcdef0123456789\"\n",
            config_text(&mock.base_url(), "")
        ),
    );
    let (mut child, addr, log) = start_serve_with(
        &dir,
        &["--config", &config],
        &[("LLMGATE_SHUTDOWN_GRACE", "1s")],
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    // Paced streams of 6 s, far longer than the grace; some report no usage at all.
    let slow = |no_usage: bool| json!({"chunks": 60, "chunk_delay_ms": 100, "no_usage": no_usage});
    let mut requests = Vec::new();
    for i in 0..4 {
        requests.push(
            client
                .post(format!("http://{addr}/v1/chat/completions"))
                .bearer_auth("sk-test-key-0123456789abcdef0123456789")
                .json(&json!({
                    "model": "gpt-test", "stream": true,
                    "messages": [{"role": "user", "content": "a long answer please"}],
                    "mock": slow(i % 2 == 1),
                })),
        );
    }
    // One translated for an Anthropic client, whose error event takes Anthropic's shape.
    requests.push(
        client
            .post(format!("http://{addr}/v1/messages"))
            .header("x-api-key", "sk-test-key-0123456789abcdef0123456789")
            .json(&json!({
                "model": "gpt-test", "stream": true, "max_tokens": 100,
                "messages": [{"role": "user", "content": "a long answer please"}],
                "mock": slow(false),
            })),
    );
    let mut streams = Vec::new();
    for request in requests {
        let mut response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let first = response.chunk().await.unwrap().unwrap();
        streams.push((response, String::from_utf8(first.to_vec()).unwrap()));
    }

    let pid = child.id().to_string();
    let waiter = tokio::task::spawn_blocking(move || {
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        child.wait().unwrap().code()
    });
    let read_all = streams
        .into_iter()
        .map(|(mut response, mut text)| async move {
            while let Ok(Some(chunk)) = response.chunk().await {
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
            text
        });
    let texts = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(read_all),
    )
    .await
    .expect("the streams were not ended after the grace");
    for (i, text) in texts.iter().enumerate() {
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        let data: serde_json::Value = serde_json::from_str(
            last.lines()
                .find_map(|line| line.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("stream {i} has no final event: {text}")),
        )
        .unwrap();
        if i == 4 {
            assert!(last.starts_with("event: error"), "stream {i}: {last}");
            assert_eq!(data["error"]["type"], "overloaded_error", "{last}");
        } else {
            assert_eq!(data["error"]["code"], "shutting_down", "stream {i}: {last}");
        }
        assert!(
            !text.contains("[DONE]"),
            "stream {i} ran to its end: {text}"
        );
    }
    let code = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, Some(0), "{}", log.complete().join("\n"));

    // Every stream has its row, with the status its error event carried.
    let db_url = format!("sqlite://{}", dir.path().join("serve.db").display());
    let db = llmgate::db::Db::open(&db_url).await.unwrap();
    let page = db
        .log_page(&llmgate::db::LogQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.rows.len(), 5, "{:#?}", page.rows);
    for row in &page.rows {
        assert_eq!(row.status, 503, "{row:?}");
        assert!(row.stream, "{row:?}");
        // Cut before the upstream's usage chunk: estimated from what was generated.
        assert!(row.estimated, "{row:?}");
        assert!(
            row.prompt_tokens > 0 && row.completion_tokens > 0,
            "{row:?}"
        );
    }
    db.close().await;
}

/// One outcome, recorded the same everywhere: a stream that broke mid-way or failed before its
/// first byte has the same status and `stream` flag in its log line and its request-log row,
/// and a broken pass-through stream's completion is estimated from what was generated.
#[tokio::test]
async fn a_failed_stream_has_one_outcome_in_the_log_line_and_the_request_log() {
    let mock = llmgate::mock::spawn(bind().await, llmgate::mock::MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = "sk-test-key-0123456789abcdef0123456789";
    let anthropic = format!(
        "[[providers]]\nname = \"claude\"\nkind = \"anthropic\"\nbase_url = \"{}\"\n\
         [[providers.accounts]]\nname = \"c1\"\napi_key = \"sk-ant-upstream\"\n\
         [[models]]\nname = \"claude-test\"\n[[models.routes]]\nprovider = \"claude\"\nmodel = \"claude-upstream\"\n",
        mock.base_url()
    );
    let config = write(
        &dir,
        "c.toml",
        &format!(
            "{}\n[[keys]]\nname = \"k\"\nkey = \"{key}\"\n",
            config_text(&mock.base_url(), &anthropic)
        ),
    );
    let (mut child, addr, log) = start_serve(&dir, &["--config", &config]);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let words = "one two three four five six seven eight nine ten eleven twelve";
    let cases = [
        (
            "cut",
            "/v1/chat/completions",
            json!({"model": "gpt-test", "stream": true,
                   "messages": [{"role": "user", "content": words}],
                   "mock": {"chunks": 8, "cut_after": 3}}),
        ),
        (
            "early",
            "/v1/chat/completions",
            json!({"model": "gpt-test", "stream": true,
                   "messages": [{"role": "user", "content": words}],
                   "mock": {"status": 500}}),
        ),
        (
            "anthropic-cut",
            "/v1/messages",
            json!({"model": "claude-test", "stream": true, "max_tokens": 100,
                   "messages": [{"role": "user", "content": words}],
                   "mock": {"chunks": 8, "cut_after": 3}}),
        ),
    ];
    for (id, path, body) in &cases {
        let response = client
            .post(format!("http://{addr}{path}"))
            .bearer_auth(key)
            .header("x-api-key", key)
            .header("x-request-id", *id)
            .json(body)
            .send()
            .await
            .unwrap();
        let _ = response.text().await;
    }
    assert_eq!(terminate(&mut child), Some(0));
    let lines: Vec<serde_json::Value> = log
        .complete()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &serde_json::Value| line["target"] == "llmgate::request")
        .collect();
    let db_url = format!("sqlite://{}", dir.path().join("serve.db").display());
    let db = llmgate::db::Db::open(&db_url).await.unwrap();
    let rows = db
        .log_page(&llmgate::db::LogQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .rows;
    for (id, _, _) in &cases {
        let row = rows
            .iter()
            .find(|row| row.request_id == *id)
            .unwrap_or_else(|| panic!("no row for {id}: {rows:?}"));
        let line = lines
            .iter()
            .find(|line| line["request_id"] == *id)
            .unwrap_or_else(|| panic!("no log line for {id}: {lines:?}"));
        assert_eq!(line["status"], row.status, "{id}: {line} vs {row:?}");
        assert_eq!(row.status, 502, "{id}: {row:?}");
        assert_eq!(line["stream"], true, "{id}: {line}");
        assert!(row.stream, "{id}: {row:?}");
    }
    let broken = rows
        .iter()
        .find(|row| row.request_id == "anthropic-cut")
        .unwrap();
    assert!(
        broken.estimated && broken.completion_tokens > 1,
        "{broken:?}"
    );
    db.close().await;
}
