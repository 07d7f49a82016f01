//! Spawning the app and its mock upstream for a test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmgate::app::App;
use llmgate::auth::{NewKey, create_key};
use llmgate::clock::{Clock, ManualClock};
use llmgate::config_file;
use llmgate::db::Db;
use llmgate::mock::{self, MockConfig, MockHandle};
use llmgate::settings::Settings;
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The upstream credential the test config gives the mock provider's account.
pub const UPSTREAM_KEY: &str = "sk-upstream-account-secret-1";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub mock: MockHandle,
    /// A key allowed to use every model.
    pub key: String,
    pub db_url: String,
    pub db: Db,
    /// The app's usage recorder, to flush deterministically with `flush_usage`.
    pub usage: llmgate::usage::UsageRecorder,
    /// The admin password: the one the options set, else the one generated at start-up.
    pub admin_password: String,
    /// The clock limits and health are measured on, when the options asked for a manual one.
    clock: Option<Arc<ManualClock>>,
    _dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Extra config declaring an anthropic provider (`claude`) and a gemini provider (`gem`), both
/// served by the mock, for `TestOptions::extra_config`.
pub const CLAUDE_AND_GEMINI_PROVIDERS: &str = r#"
[[providers]]
name = "claude"
kind = "anthropic"
base_url = "{mock}"
  [[providers.accounts]]
  name = "c1"
  api_key = "sk-ant-upstream-claude-0001"

[[providers]]
name = "gem"
kind = "gemini"
base_url = "{mock_gemini}"
  [[providers.accounts]]
  name = "g1"
  api_key = "gm-upstream-gemini-0002"
"#;

/// How to build a test app; `Default` gives one model `gpt-test` routed to the mock.
pub struct TestOptions {
    pub settings: Settings,
    /// Extra TOML appended to the default config (more providers, models, keys); `{mock}` and
    /// `{mock_gemini}` are replaced by the mock's OpenAI/Anthropic and Gemini base URLs,
    /// `{mock_azure}`, `{mock_vertex}`, `{mock_bedrock}` and `{mock_token_uri}` by its Azure,
    /// Vertex AI and Bedrock base URLs and its token endpoint.
    pub extra_config: String,
    pub mock: MockConfig,
    /// Measure limits and health on a manual clock that the test moves with `advance`.
    pub manual_clock: bool,
    /// Serve this database (another app's `db_url`) instead of a fresh one: a replica.
    pub database_url: Option<String>,
    /// Store in a SQLite file even when the suite runs on PostgreSQL: for the tests of what
    /// only SQLite has (its files, their modes, `VACUUM INTO` backups).
    pub sqlite_only: bool,
    /// Route the config's `mock` provider here (another app's `mock.base_url()`) instead of
    /// to this app's own mock, so replicas share one upstream.
    pub upstream_base_url: Option<String>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            settings: Settings {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                change_poll_interval: Duration::from_millis(100),
                shutdown_grace: Duration::from_secs(5),
                ..Settings::default()
            },
            extra_config: String::new(),
            mock: MockConfig::default(),
            manual_clock: false,
            database_url: None,
            sqlite_only: false,
            upstream_base_url: None,
        }
    }
}

pub fn config_text(mock_base_url: &str, extra: &str) -> String {
    format!(
        r#"
[[providers]]
name = "mock"
kind = "openai"
base_url = "{mock_base_url}"

  [[providers.accounts]]
  name = "a1"
  api_key = "{UPSTREAM_KEY}"

[[models]]
name = "gpt-test"

  [[models.routes]]
  provider = "mock"
  model = "mock-model"

[[models]]
name = "other-model"

  [[models.routes]]
  provider = "mock"
  model = "mock-other"
{extra}
"#
    )
}

/// The encryption key of every test app on PostgreSQL (32 zero bytes, base64).
pub const TEST_ENCRYPTION_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Whether fresh test apps store in PostgreSQL: `LLMGATE_TEST_DATABASE=postgres` runs the
/// whole integration suite on a database of the test process's PostgreSQL cluster instead of
/// a SQLite file (`make test` runs it both ways).
pub fn test_backend_is_postgres() -> bool {
    std::env::var("LLMGATE_TEST_DATABASE").is_ok_and(|backend| backend == "postgres")
}

pub async fn spawn_app() -> TestApp {
    spawn_with(TestOptions::default()).await
}

/// [`spawn_app`] on a SQLite file whatever the suite's backend.
pub async fn spawn_sqlite_app() -> TestApp {
    spawn_with(TestOptions {
        sqlite_only: true,
        ..TestOptions::default()
    })
    .await
}

pub async fn spawn_with(options: TestOptions) -> TestApp {
    let mock = mock::spawn(bind().await, options.mock).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let replica = options.database_url.is_some();
    let db_url = match options.database_url {
        Some(url) => url,
        None if test_backend_is_postgres() && !options.sqlite_only => {
            crate::pg_cluster::fresh_database().await
        }
        None => format!("sqlite://{}", dir.path().join("llmgate.db").display()),
    };
    let upstream = options.upstream_base_url.unwrap_or_else(|| mock.base_url());
    // `{mock}` and `{mock_gemini}` in the extra config stand for the mock's base URLs.
    let extra = options
        .extra_config
        .replace("{mock}", &upstream)
        .replace("{mock_gemini}", &mock.gemini_base_url())
        .replace("{mock_azure}", &mock.azure_base_url())
        .replace("{mock_vertex}", &mock.vertex_base_url())
        .replace("{mock_bedrock}", &mock.bedrock_base_url())
        .replace("{mock_token_uri}", &mock.token_uri());
    let text = config_text(&upstream, &extra);
    let config = config_file::parse(&text, &|_| None).unwrap();

    let mut settings = options.settings;
    settings.database_url = db_url.clone();
    if db_url.starts_with("postgres") && settings.encryption_key.is_none() {
        // Replicas on one PostgreSQL database share the key, as the README tells operators.
        settings.encryption_key = Some(llmgate::secret::Secret::new(TEST_ENCRYPTION_KEY));
    }
    let chosen_password = settings.admin_password.clone();
    let (clock, handle) = if options.manual_clock {
        let (clock, handle) = Clock::manual(chrono::Utc::now());
        (clock, Some(handle))
    } else {
        (Clock::System, None)
    };
    let app = App::build_with_clock(settings, Some(&config), clock)
        .await
        .unwrap();
    let admin_password = match (app.generated_admin_password(), chosen_password) {
        (Some(generated), _) => generated.expose().to_owned(),
        (None, Some(chosen)) => chosen.expose().to_owned(),
        (None, None) => panic!("a fresh database must get a generated admin password"),
    };
    let addr = app.local_addr().unwrap();
    let db = app.state().db.clone();
    let usage = app.state().usage.clone();
    let (key_row, key) = create_key(
        &db,
        NewKey {
            name: if replica {
                format!("test-{:08x}", rand::random::<u32>())
            } else {
                "test".into()
            },
            ..NewKey::default()
        },
    )
    .await
    .unwrap();
    assert!(key_row.name.starts_with("test"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        mock,
        key,
        db_url,
        db,
        usage,
        admin_password,
        clock: handle,
        _dir: dir,
        stop: Some(stop),
        task: Some(task),
    }
}

pub async fn bind() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

impl TestApp {
    /// The calendar time on the app's manual clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let clock = self
            .clock
            .as_ref()
            .expect("spawned with `manual_clock: true`");
        Clock::Manual(clock.clone()).now()
    }

    /// Moves the app's manual clock (cooldowns, circuits, limits, key expiry) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.clock
            .as_ref()
            .expect("spawned with `manual_clock: true`")
            .advance(by);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A POST with the test key and a JSON body.
    pub fn post(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(&body)
    }

    pub fn chat(&self, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.post("/v1/chat/completions", body)
    }

    /// A POST of `body` exactly as given (the bytes a client wrote), with the test key.
    pub fn post_bytes(&self, path: &str, body: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
    }

    /// The last request the mock upstream received on a path starting with `path_prefix`.
    pub fn last_upstream_request(&self, path_prefix: &str) -> llmgate::mock::RecordedRequest {
        self.mock
            .requests()
            .into_iter()
            .rev()
            .find(|request| request.path.starts_with(path_prefix))
            .unwrap_or_else(|| panic!("no upstream request to {path_prefix}"))
    }

    /// The JSON body of [`Self::last_upstream_request`].
    pub fn last_upstream_json(&self, path_prefix: &str) -> serde_json::Value {
        serde_json::from_slice(&self.last_upstream_request(path_prefix).body).unwrap()
    }

    /// Logs in as the admin and returns the token.
    pub async fn admin_token(&self) -> String {
        let response = self
            .client
            .post(self.url("/admin/login"))
            .json(&serde_json::json!({"password": self.admin_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "admin login");
        let body: serde_json::Value = response.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// An admin API request with `token`.
    pub fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// The JSON answer of an admin API GET of `path` with `token`.
    pub async fn admin_json(&self, path: &str, token: &str) -> serde_json::Value {
        self.admin(reqwest::Method::GET, path, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `/metrics` exposition text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Writes every recorded usage event now (what the writer task does every second).
    pub async fn flush_usage(&self) {
        llmgate::usage::UsageWriter::new(&self.usage, self.db.clone())
            .flush_now()
            .await
            .unwrap();
    }

    /// Usage totals of this key's day, grouped by model.
    pub async fn usage_by_model(&self) -> Vec<llmgate::db::UsageTotals> {
        self.db
            .usage_totals(&llmgate::db::UsageQuery {
                from: None,
                to: None,
                group_by: vec![llmgate::db::UsageGroup::Model],
            })
            .await
            .unwrap()
    }

    /// Creates another key with the given settings and returns its plaintext.
    pub async fn create_key(&self, new: NewKey) -> String {
        create_key(&self.db, new).await.unwrap().1
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the server like [`TestApp::stop`] but keeps its directory (database, key file)
    /// for the caller to inspect or serve again.
    pub async fn stop_keeping_files(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self._dir
    }

    /// Runs the llmgate binary with `args` against this app's database; its exit code,
    /// stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(Self::bin())
            .args(args)
            .env("LLMGATE_DATABASE_URL", &self.db_url)
            .env("LLMGATE_LOG", "warn")
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Path to the llmgate binary built for these tests.
    pub fn bin() -> &'static str {
        env!("CARGO_BIN_EXE_llmgate")
    }
}

/// Revokes the key named `name` through `app`'s admin API.
pub async fn revoke_key_named(app: &TestApp, name: &str) {
    let token = app.admin_token().await;
    revoke_key_named_at(&app.client, &app.url(""), &token, name).await;
}

/// Revokes the key named `name` through the admin API at `base` (`http://host:port`) with the
/// admin token `token`.
pub async fn revoke_key_named_at(client: &reqwest::Client, base: &str, token: &str, name: &str) {
    let keys: Value = client
        .get(format!("{base}/admin/keys"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["name"] == name)
        .unwrap_or_else(|| panic!("no key named {name} in {keys}"))["id"]
        .as_i64()
        .unwrap();
    let revoked = client
        .post(format!("{base}/admin/keys/{id}/revoke"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
}

/// Sends `body` as `key` to the chat endpoint at `url`; the status (the answer read whole).
pub async fn chat_status(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> u16 {
    let response = client
        .post(url)
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    response.text().await.unwrap();
    status
}

/// The text of an OpenAI chat stream (its `data:` frames' content deltas, in order), and
/// whether it ended with `[DONE]`.
pub fn chat_stream_text(stream: &str) -> (String, bool) {
    let frames: Vec<&str> = stream
        .split("\n\n")
        .filter_map(|frame| frame.trim().strip_prefix("data: "))
        .collect();
    let done = frames.last() == Some(&"[DONE]");
    let text = frames
        .iter()
        .filter_map(|frame| serde_json::from_str::<Value>(frame).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    (text, done)
}

/// A chat request body for `model`.
pub fn chat_body(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns the time taken.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Asserts an OpenAI-shaped error body with this status and code.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error.get("type").is_some() && error.get("param").is_some(),
        "{body}"
    );
    body
}

/// A `llmgate serve` child process; killed if the test ends without stopping it.
pub struct Serve {
    child: Child,
    addr: String,
    /// Everything it wrote to stdout and stderr, line by line.
    output: Arc<Mutex<Vec<String>>>,
}

/// The address in the "llmgate is listening" line, in the `json` format or (when a test sets
/// `LLMGATE_LOG_FORMAT=pretty`) the `pretty` one, where it reads `addr=127.0.0.1:PORT`.
fn listening_addr(line: &str) -> Option<String> {
    if let Ok(log) = serde_json::from_str::<Value>(line) {
        return log["addr"].as_str().map(str::to_owned);
    }
    let (_, rest) = line.split_once("addr=")?;
    rest.split_whitespace().next().map(str::to_owned)
}

impl Serve {
    pub fn start(db_url: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut child = Command::new(TestApp::bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--database", db_url])
            .args(args)
            .env("LLMGATE_LOG_FORMAT", "json")
            // The address is read from the info-level "listening" line.
            .env("LLMGATE_LOG", "info")
            .env("LLMGATE_SHUTDOWN_GRACE", "5s")
            .env_remove("LLMGATE_ADMIN_PASSWORD")
            .env_remove("LLMGATE_JWT_SECRET")
            .envs(
                db_url
                    .starts_with("postgres")
                    .then_some(("LLMGATE_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY)),
            )
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output: Arc<Mutex<Vec<String>>> = Arc::default();
        let (found, listening) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("llmgate is listening")
                    && let Some(addr) = listening_addr(&line)
                {
                    let _ = found.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match listening.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve did not start:\n{}",
                    output.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            addr,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The first output line containing `text`, waiting for it up to 10 s.
    pub fn wait_for(&self, text: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(line) = self
                .output
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(text))
            {
                return Some(line.clone());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops it with SIGTERM and returns everything it wrote.
    pub fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the readers drain what is left in the pipes.
        std::thread::sleep(Duration::from_millis(200));
        self.output.lock().unwrap().join("\n")
    }
}

impl Serve {
    /// Kills it with SIGKILL, as a crash or `kill -9` would, and waits for it to be gone.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Waits up to `limit` for it to exit; its exit code, or `None` if it is still running
    /// (or died from a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything it wrote so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a scripted upstream was asked: the body's `model` and the request headers.
pub type ScriptedAnswer =
    dyn Fn(&str, &axum::http::HeaderMap) -> axum::response::Response + Send + Sync + 'static;

/// An upstream whose every answer the test writes, for answers the mock does not imitate
/// (hostile sizes, provider-specific error bodies). `answer` gets the upstream model the
/// request names and its headers. Returns its `/v1` base URL and a count of requests.
pub async fn spawn_scripted(
    answer: impl Fn(&str, &axum::http::HeaderMap) -> axum::response::Response + Send + Sync + 'static,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let answer: Arc<ScriptedAnswer> = Arc::new(answer);
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let answer = answer.clone();
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                answer(request["model"].as_str().unwrap_or_default(), &headers)
            }
        },
    );
    let listener = bind().await;
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), count)
}

/// A minimal OpenAI chat completion answering `model`.
pub fn chat_answer(model: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(serde_json::json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}

/// A throwaway `redis-server` (Debian's package; `tests/setup.sh` installs it) on a free
/// loopback port with its own empty directory and no persistence; stopped on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server again on the same port (after [`Self::kill`]), empty, and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server is not installed: run tests/setup.sh (Debian package redis-server)",
            );
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "redis-server did not listen on port {} within 5 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (as a crash would) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JSON of a 200 answer (the test fails, showing the body, on any other status).
pub async fn ok_json(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The text of a 200 answer (the test fails, showing the body, on any other status).
pub async fn ok_text(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// `model` serves the Messages and Responses ingress, whole and streamed, with the mock's echo.
pub async fn serves_messages_and_responses(app: &TestApp, model: &str) {
    let messages = serde_json::json!({"model": model, "max_tokens": 50,
        "messages": [{"role": "user", "content": "via messages"}]});
    let answer = ok_json(
        app.post("/v1/messages", messages.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer["content"][0]["text"], "echo: via messages",
        "{answer}"
    );
    assert!(answer["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let mut streamed = messages;
    streamed["stream"] = serde_json::json!(true);
    let events = ok_text(app.post("/v1/messages", streamed).send().await.unwrap()).await;
    assert!(events.contains("event: message_stop"), "{events}");

    let request = serde_json::json!({"model": model, "input": "one two"});
    let answer = ok_json(
        app.post("/v1/responses", request.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        answer["output"][0]["content"][0]["text"], "echo: one two",
        "{answer}"
    );
    let mut streamed = request;
    streamed["stream"] = serde_json::json!(true);
    let events = ok_text(app.post("/v1/responses", streamed).send().await.unwrap()).await;
    assert!(events.contains("response.completed"), "{events}");
}

/// Reads a streamed answer until what it sent so far contains `marker`; panics if the stream
/// ends first. What was read, for the caller to look at.
pub async fn read_until(response: &mut reqwest::Response, marker: &str) -> String {
    let mut text = String::new();
    while !text.contains(marker) {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("the stream ended before {marker}: {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}
